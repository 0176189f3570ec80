package freemium

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"regexp"
	"strings"
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
// is one statement, so one round trip. A user's live holds, and the usage of
// the window the user was last active in, sit on the user's account row:
// a check reads that row, and Reserve checks and holds in one statement on
// it, locked, so any number of app instances may share the database under
// READ COMMITTED. Holds are committed without waiting for the WAL flush
// (they expire anyway); recorded usage is durable. Safe for simultaneous use.
type PostgresStore struct {
	pool   *pgxpool.Pool
	schema string
	sql    struct {
		load, reserve, commit, cancel, record, createAccount, markFirst string
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
	schema := pgx.Identifier{c.Schema}.Sanitize()
	s.sql.load = statement(loadSQL, schema, "$2", "$3", "$4")
	s.sql.reserve = statement(reserveSQL, schema, "$6", "$9", "$8")
	s.sql.commit = statement(commitSQL, schema, "", "", "")
	s.sql.cancel = statement(cancelSQL, schema, "", "", "")
	s.sql.record = statement(recordSQL, schema, "$2", "$3", "$6")
	s.sql.createAccount = statement(createAccountSQL, schema, "", "", "")
	s.sql.markFirst = statement(markFirstSQL, schema, "", "", "")
	return s, nil
}

// statement fills in a statement template: {s} is the schema; {start},
// {every} (µs) and {now} are the statement's placeholders for the window;
// the fragments below are spelled out in their terms, about the account
// row "a".
func statement(tmpl, schema, start, every, now string) string {
	fragments := strings.NewReplacer(
		// The start of the user's window: Every windows from the anchor
		// (now, for a user without a row), fixed windows as given.
		// A now before the anchor (a clock behind the instance that anchored
		// the user) is in the first window.
		"{window_start}", "(CASE WHEN {every}::bigint > 0 THEN date_bin({every} * interval '1 microsecond', greatest({now}::timestamptz, a.anchor), coalesce(a.anchor, {now})) ELSE {start}::timestamptz END)",
		// The live holds on the row.
		"{reserved}", "coalesce((SELECT least(coalesce(sum(x.tokens), 0), {max}) FROM unnest(a.holds) x WHERE x.expires_at > {now}), 0)",
		"{first_held}", "coalesce((SELECT bool_or(x.first_report) FROM unnest(a.holds) x WHERE x.expires_at > {now}), false)",
	)
	params := strings.NewReplacer("{s}", schema, "{start}", start, "{every}", every, "{now}", now,
		"{max}", "9223372036854775807")
	return params.Replace(fragments.Replace(tmpl))
}

// Every statement that writes takes rows in one order: the reservation or
// idempotency key, then the window's usage row, then the account row. So
// none can deadlock another, and a Reserve, which locks the usage row
// before the account row, reads the latest usage and the latest holds
// together: a Commit has either finished both or touched neither.

// loadSQL reads a user's state: $1 user, $2 start, $3 every (µs), $4 now.
const loadSQL = `
SELECT {window_start}, coalesce(u.used, 0), {reserved}, coalesce(a.first_report_used, false), {first_held}
FROM (SELECT 1) one
LEFT JOIN {s}.accounts a ON a.user_id = $1
LEFT JOIN {s}.usage_periods u ON u.user_id = $1 AND u.period_start = {window_start}`

// reserveSQL checks and holds in one statement: $1 id, $2 user, $3 tokens,
// $4 limit (< 0: Unlimited), $5 first report free, $6 start, $7 expires,
// $8 now, $9 every (µs), $10 prune old reservations.
//
// It locks the window's usage row (an upsert that changes nothing) and then
// the account row (inserted, or updated by ON CONFLICT DO UPDATE, which
// evaluates its expressions on the row's latest version). The admission rule
// of Hold decides whether the new hold joins the row's holds; the row comes
// back either way, with the state as it was before the hold. same_window is
// false in the one case the rule could not be applied: the user's first
// activity, racing another, set a different anchor for an Every window.
const reserveSQL = `
WITH cfg AS (
	-- A hold need not survive a crash (it expires anyway): this transaction
	-- does not wait for the WAL flush. Commit, which records usage, does.
	SELECT set_config('synchronous_commit', 'off', true) AS v
), win AS (
	-- The window, from the anchor in this statement's snapshot: an anchor
	-- never changes once set.
	SELECT {window_start} AS ws
	FROM cfg, (SELECT 1) one LEFT JOIN {s}.accounts a ON a.user_id = $2::text
), usage AS (
	INSERT INTO {s}.usage_periods AS u (user_id, period_start, used)
	SELECT $2::text, ws, 0 FROM win
	ON CONFLICT (user_id, period_start) DO UPDATE SET used = u.used
	RETURNING u.period_start AS ws, u.used
), acct AS (
	INSERT INTO {s}.accounts AS a (user_id, anchor, holds)
	SELECT $2::text, $8::timestamptz,
	       CASE WHEN $5::boolean OR $4::bigint < 0 OR usage.used::numeric + $3::bigint <= $4::bigint
	            THEN ARRAY[ROW($1::text, $3::bigint, $7::timestamptz, $5::boolean)::{s}.hold] ELSE '{}' END
	FROM usage
	ON CONFLICT (user_id) DO UPDATE SET holds =
		ARRAY(SELECT x FROM unnest(a.holds) x WHERE x.expires_at > $8)
		|| CASE WHEN {window_start} = (SELECT ws FROM usage)
		         AND (($5 AND NOT a.first_report_used AND NOT {first_held})
		              OR $4 < 0
		              OR (SELECT used FROM usage)::numeric + {reserved} + $3 <= $4)
		        THEN ARRAY[ROW($1, $3, $7, $5 AND NOT a.first_report_used AND NOT {first_held})::{s}.hold]
		        ELSE '{}' END
	RETURNING {window_start} = (SELECT ws FROM usage) AS same_window, a.first_report_used,
	          (SELECT x.first_report FROM unnest(a.holds) x WHERE x.id = $1) AS first,
	          coalesce((SELECT least(coalesce(sum(x.tokens), 0), {max}) FROM unnest(a.holds) x WHERE x.expires_at > $8 AND x.id <> $1), 0) AS reserved,
	          coalesce((SELECT bool_or(x.first_report) FROM unnest(a.holds) x WHERE x.expires_at > $8 AND x.id <> $1), false) AS first_held
), res AS (
	INSERT INTO {s}.reservations (id, user_id, period_start, first_report, expires_at)
	SELECT $1, $2, usage.ws, acct.first, $7 FROM acct, usage WHERE acct.first IS NOT NULL
), prune AS (
	DELETE FROM {s}.reservations WHERE $10 AND id IN (
		SELECT id FROM {s}.reservations WHERE expires_at < $8::timestamptz - interval '1 day'
		ORDER BY expires_at LIMIT 2048 FOR UPDATE SKIP LOCKED)
)
SELECT usage.ws, usage.used, acct.reserved, acct.first_report_used, acct.first_held,
       acct.first IS NOT NULL, coalesce(acct.first, false), acct.same_window
FROM usage, acct`

// commitSQL records a hold's usage: $1 id, $2 tokens, $3 now. It returns
// whether the reservation is known.
const commitSQL = `
WITH r AS (
	UPDATE {s}.reservations SET state = 'committed'
	WHERE id = $1::text AND state <> 'committed' AND expires_at >= $3::timestamptz - interval '1 day'
	RETURNING user_id, period_start, first_report
), usage AS (
	INSERT INTO {s}.usage_periods AS u (user_id, period_start, used)
	SELECT user_id, period_start, $2::bigint FROM r
	ON CONFLICT (user_id, period_start) DO UPDATE SET used = least(u.used::numeric + excluded.used, {max})::bigint
	RETURNING u.user_id
), acct AS (
	UPDATE {s}.accounts a
	SET holds = ARRAY(SELECT x FROM unnest(a.holds) x WHERE x.id <> $1),
	    first_report_used = a.first_report_used OR (SELECT first_report FROM r)
	WHERE a.user_id = (SELECT user_id FROM usage)
)
SELECT EXISTS (SELECT 1 FROM r)
    OR EXISTS (SELECT 1 FROM {s}.reservations WHERE id = $1 AND expires_at >= $3::timestamptz - interval '1 day')`

// cancelSQL ends a held hold: $1 id, $2 now. It returns whether the
// reservation is known.
const cancelSQL = `
WITH cfg AS (
	SELECT set_config('synchronous_commit', 'off', true) AS v -- holds need not be durable
), r AS (
	UPDATE {s}.reservations SET state = 'canceled'
	WHERE id = $1::text AND state = 'held' AND expires_at >= $2::timestamptz - interval '1 day'
	RETURNING user_id
), acct AS (
	UPDATE {s}.accounts a SET holds = ARRAY(SELECT x FROM unnest(a.holds) x WHERE x.id <> $1)
	WHERE a.user_id = (SELECT user_id FROM r)
)
SELECT (SELECT v FROM cfg) IS NOT NULL
   AND (EXISTS (SELECT 1 FROM r)
        OR EXISTS (SELECT 1 FROM {s}.reservations WHERE id = $1 AND expires_at >= $2::timestamptz - interval '1 day'))`

// recordSQL adds usage, once per non-empty key: $1 user, $2 start, $3 every
// (µs), $4 tokens, $5 key, $6 now. It locks no account row. For a user
// without one it writes nothing and answers false: the caller creates the
// account (its anchor fixes Every windows) and records again.
const recordSQL = `
WITH prior AS (
	SELECT a.anchor, {window_start} AS ws
	FROM (SELECT 1) one LEFT JOIN {s}.accounts a ON a.user_id = $1::text
), k AS (
	INSERT INTO {s}.usage_keys (user_id, key, tokens, recorded_at)
	SELECT $1::text, $5::text, $4::bigint, $6::timestamptz FROM prior WHERE $5 <> '' AND prior.anchor IS NOT NULL
	ON CONFLICT DO NOTHING
	RETURNING 1
), usage AS (
	INSERT INTO {s}.usage_periods AS u (user_id, period_start, used)
	SELECT $1::text, prior.ws, $4::bigint FROM prior
	WHERE prior.anchor IS NOT NULL AND ($5 = '' OR EXISTS (SELECT 1 FROM k))
	ON CONFLICT (user_id, period_start) DO UPDATE SET used = least(u.used::numeric + excluded.used, {max})::bigint
)
SELECT anchor IS NOT NULL FROM prior`

// createAccountSQL anchors a user at their first activity: $1 user, $2 now.
const createAccountSQL = `
INSERT INTO {s}.accounts (user_id, anchor) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`

// markFirstSQL: $1 user, $2 now.
const markFirstSQL = `
INSERT INTO {s}.accounts AS a (user_id, anchor, first_report_used) VALUES ($1, $2, true)
ON CONFLICT (user_id) DO UPDATE SET first_report_used = true WHERE NOT a.first_report_used`

// pruneEvery: about one Reserve in pruneEvery deletes up to 2048 reservations
// a day past expiry, more than the pruneEvery it adds meanwhile.
const pruneEvery = 512

// Load implements Store.
func (s *PostgresStore) Load(ctx context.Context, userID string, w Window, now time.Time) (State, error) {
	var st State
	err := s.pool.QueryRow(ctx, s.sql.load, userID, w.Start, w.Every.Microseconds(), now).Scan(
		&st.PeriodStart, &st.Used, &st.Reserved, &st.FirstReportUsed, &st.FirstReportHeld)
	if err != nil {
		return State{}, err
	}
	st.PeriodStart, st.PeriodEnd = w.end(st.PeriodStart)
	return st, nil
}

// Reserve implements Store.
func (s *PostgresStore) Reserve(ctx context.Context, h Hold, now time.Time) (ReserveResult, error) {
	for attempt := 0; ; attempt++ {
		var r ReserveResult
		var sameWindow bool
		st := &r.State
		err := s.pool.QueryRow(ctx, s.sql.reserve,
			h.ID, h.UserID, h.Tokens, h.Limit, h.FirstReport, h.Window.Start, h.ExpiresAt, now,
			h.Window.Every.Microseconds(), rand.N(pruneEvery) == 0,
		).Scan(&st.PeriodStart, &st.Used, &st.Reserved, &st.FirstReportUsed, &st.FirstReportHeld,
			&r.Admitted, &r.FirstReport, &sameWindow)
		if err != nil {
			return ReserveResult{}, err
		}
		if !sameWindow && attempt == 0 {
			// A racing first activity anchored the user: the user's row now
			// exists, so the next attempt reads its anchor.
			continue
		}
		if !sameWindow {
			return ReserveResult{}, errors.New("freemium: reserve: the user's window moved twice during one Reserve")
		}
		st.PeriodStart, st.PeriodEnd = h.Window.end(st.PeriodStart)
		return r, nil
	}
}

// Commit implements Store.
func (s *PostgresStore) Commit(ctx context.Context, holdID string, tokens int64, now time.Time) error {
	return s.byID(ctx, s.sql.commit, holdID, tokens, now)
}

// Cancel implements Store.
func (s *PostgresStore) Cancel(ctx context.Context, holdID string, now time.Time) error {
	return s.byID(ctx, s.sql.cancel, holdID, now)
}

// byID runs a statement on a reservation that answers whether it is known.
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
	for attempt := 0; ; attempt++ {
		var known bool
		err := s.pool.QueryRow(ctx, s.sql.record, userID, w.Start, w.Every.Microseconds(), tokens, key, now).Scan(&known)
		if err != nil || known {
			return err
		}
		if attempt > 0 {
			return errors.New("freemium: record: the user's account could not be created")
		}
		// A new user: anchor them (or learn the anchor a racing first
		// activity set), then record.
		if _, err := s.pool.Exec(ctx, s.sql.createAccount, userID, now); err != nil {
			return err
		}
	}
}

// MarkFirstReportUsed implements Store.
func (s *PostgresStore) MarkFirstReportUsed(ctx context.Context, userID string, now time.Time) error {
	_, err := s.pool.Exec(ctx, s.sql.markFirst, userID, now)
	return err
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
