package freemium

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/freemiumkit/freemium/internal/migrations"
)

// Migrations are the SQL files PostgresStore.Migrate applies, numbered
// NNN_name.up.sql and NNN_name.down.sql, for hosts that run their own
// migration tool. They create unqualified objects: run them with search_path
// set to the schema, which must exist.
var Migrations fs.FS = migrations.FS

// PostgresConfig configures a PostgresStore.
type PostgresConfig struct {
	// Schema holds the store's tables and functions: lower-case letters,
	// digits and underscores, starting with a letter or underscore, at most
	// 63 bytes. Default "freemium".
	Schema string
}

// PostgresStore is a Store in Postgres, through a pgx pool. Every operation
// is one round trip; writes for one user are serialized by a transaction
// advisory lock, so any number of app instances may share the database.
// Reservation holds are committed without waiting for the WAL flush (they
// expire anyway); recorded usage is durable. Safe for simultaneous use.
type PostgresStore struct {
	pool   *pgxpool.Pool
	schema string
	sql    struct {
		load, reserve, commit, cancel, record, markFirst string
	}
}

var _ Store = (*PostgresStore)(nil)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// NewPostgresStore returns a PostgresStore on pool. cfg may be nil for the
// defaults. Call Migrate (or apply Migrations) before use.
func NewPostgresStore(pool *pgxpool.Pool, cfg *PostgresConfig) (*PostgresStore, error) {
	if pool == nil {
		return nil, errors.New("freemium: NewPostgresStore: pool is nil: pass a *pgxpool.Pool from pgxpool.New")
	}
	var c PostgresConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Schema == "" {
		c.Schema = "freemium"
	}
	if !schemaName.MatchString(c.Schema) {
		return nil, fmt.Errorf("freemium: PostgresConfig.Schema %q is not a plain identifier: use lower-case letters, digits and underscores, at most 63 bytes", c.Schema)
	}
	s := &PostgresStore{pool: pool, schema: c.Schema}
	q := pgx.Identifier{c.Schema}.Sanitize() + "."
	// The snapshot query of the reserve function, from Go: a function call
	// would cost Check a third more. Keep the two in step.
	s.sql.load = `
		SELECT w.period_start, w.period_end, coalesce(u.used, 0), coalesce(h.reserved, 0),
		       coalesce(a.first_report_used, false), coalesce(h.first_held, false)
		FROM (SELECT $1::text AS user_id) me
		LEFT JOIN ` + q + `accounts a ON a.user_id = me.user_id
		CROSS JOIN LATERAL (
			SELECT CASE WHEN $4::bigint > 0
			            THEN date_bin($4 * interval '1 microsecond', $5::timestamptz, coalesce(a.anchor, $5))
			            ELSE $2::timestamptz END AS period_start
		) ws
		CROSS JOIN LATERAL (
			SELECT ws.period_start,
			       CASE WHEN $4 > 0 THEN ws.period_start + $4 * interval '1 microsecond' ELSE $3::timestamptz END AS period_end
		) w
		LEFT JOIN ` + q + `usage_periods u ON u.user_id = me.user_id AND u.period_start = w.period_start
		CROSS JOIN LATERAL (
			SELECT least(coalesce(sum(r.tokens), 0), 9223372036854775807)::bigint AS reserved,
			       bool_or(r.first_report) AS first_held
			FROM ` + q + `reservations r
			WHERE r.user_id = me.user_id AND r.expires_at > $5 AND r.state = 'held'
		) h`
	s.sql.reserve = "SELECT * FROM " + q + "reserve($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
	s.sql.commit = "SELECT " + q + "commit_reservation($1, $2)"
	s.sql.cancel = "SELECT " + q + "cancel_reservation($1)"
	s.sql.record = "SELECT " + q + "record_usage($1, $2, $3, $4, $5, $6, $7)"
	s.sql.markFirst = "INSERT INTO " + q + "accounts AS a (user_id, anchor, first_report_used) VALUES ($1, $2, true) " +
		"ON CONFLICT (user_id) DO UPDATE SET first_report_used = true WHERE NOT a.first_report_used"
	return s, nil
}

// migrateLockClass is the advisory lock class under which Migrate runs.
const migrateLockClass = 1718775090 // 'frm2'

// Migrate creates the schema if needed and applies the migrations it lacks,
// in one transaction. It is idempotent, and safe when many instances start at
// once: they take turns on an advisory lock.
func (s *PostgresStore) Migrate(ctx context.Context) error {
	ms, err := migrations.Up()
	if err != nil {
		return fmt.Errorf("freemium: migrate: %w", err)
	}
	schema := pgx.Identifier{s.schema}.Sanitize()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", migrateLockClass, s.schema); err != nil {
			return fmt.Errorf("freemium: migrate %s: %w", s.schema, err)
		}
		steps := []string{
			"CREATE SCHEMA IF NOT EXISTS " + schema,
			"SET LOCAL search_path TO " + schema,
			`CREATE TABLE IF NOT EXISTS schema_migrations (
				version    integer     PRIMARY KEY,
				name       text        NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`,
		}
		for _, sql := range steps {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("freemium: migrate %s: %w", s.schema, err)
			}
		}
		var applied int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&applied); err != nil {
			return fmt.Errorf("freemium: migrate %s: %w", s.schema, err)
		}
		for _, m := range ms {
			if m.Version <= applied {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("freemium: migrate %s: %s: %w", s.schema, m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
				return fmt.Errorf("freemium: migrate %s: %s: %w", s.schema, m.Name, err)
			}
		}
		return nil
	})
}

// windowArgs are a Window as SQL arguments: start, end, every in µs.
func windowArgs(w Window) (time.Time, time.Time, int64) {
	return w.Start, w.End, w.Every.Microseconds()
}

// Load implements Store.
func (s *PostgresStore) Load(ctx context.Context, userID string, w Window, now time.Time) (State, error) {
	start, end, every := windowArgs(w)
	var st State
	err := s.pool.QueryRow(ctx, s.sql.load, userID, start, end, every, now).Scan(
		&st.PeriodStart, &st.PeriodEnd, &st.Used, &st.Reserved, &st.FirstReportUsed, &st.FirstReportHeld)
	if err != nil {
		return State{}, err
	}
	st.PeriodStart, st.PeriodEnd = st.PeriodStart.UTC(), st.PeriodEnd.UTC()
	return st, nil
}

// Reserve implements Store.
func (s *PostgresStore) Reserve(ctx context.Context, h Hold, now time.Time) (ReserveResult, error) {
	start, end, every := windowArgs(h.Window)
	var r ReserveResult
	st := &r.State
	err := s.pool.QueryRow(ctx, s.sql.reserve,
		h.ID, h.UserID, h.Tokens, h.Limit, h.FirstReport, start, end, every, h.ExpiresAt, now,
	).Scan(&st.PeriodStart, &st.PeriodEnd, &st.Used, &st.Reserved, &st.FirstReportUsed, &st.FirstReportHeld,
		&r.Admitted, &r.FirstReport)
	if err != nil {
		return ReserveResult{}, err
	}
	st.PeriodStart, st.PeriodEnd = st.PeriodStart.UTC(), st.PeriodEnd.UTC()
	return r, nil
}

// Commit implements Store.
func (s *PostgresStore) Commit(ctx context.Context, holdID string, tokens int64, now time.Time) error {
	return s.byID(ctx, s.sql.commit, holdID, tokens)
}

// Cancel implements Store.
func (s *PostgresStore) Cancel(ctx context.Context, holdID string, now time.Time) error {
	return s.byID(ctx, s.sql.cancel, holdID)
}

// byID runs a function on a reservation that answers whether it exists.
func (s *PostgresStore) byID(ctx context.Context, sql string, args ...any) error {
	var found bool
	if err := s.pool.QueryRow(ctx, sql, args...).Scan(&found); err != nil {
		return err
	}
	if !found {
		return ErrReservationNotFound
	}
	return nil
}

// Record implements Store.
func (s *PostgresStore) Record(ctx context.Context, userID string, w Window, tokens int64, key string, now time.Time) error {
	start, end, every := windowArgs(w)
	var counted bool
	return s.pool.QueryRow(ctx, s.sql.record, userID, start, end, every, tokens, key, now).Scan(&counted)
}

// MarkFirstReportUsed implements Store.
func (s *PostgresStore) MarkFirstReportUsed(ctx context.Context, userID string, now time.Time) error {
	_, err := s.pool.Exec(ctx, s.sql.markFirst, userID, now)
	return err
}
