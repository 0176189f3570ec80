package pgstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the SQL files Store.Migrate applies, for hosts that run
// golang-migrate or another tool that reads NNN_name.up.sql and
// NNN_name.down.sql. They create unqualified objects: run them with
// search_path set to the schema, which must exist. There are two today,
// 001_init and 002_credits. See docs/migrations.md.
var Migrations fs.FS = mustSub(migrationFiles, "migrations")

// GooseMigrations are Migrations as goose reads them: one NNN_name.sql per
// version, its up and down parts marked with -- +goose Up and
// -- +goose Down.
var GooseMigrations fs.FS = gooseView(Migrations)

// migrationTable is the table in the store's schema where Migrate records
// the versions it applied: a name no migration tool uses, so that a host's
// golang-migrate (schema_migrations) or goose (goose_db_version) can share
// the schema.
const migrationTable = "freemium_migrations"

// migrateLockClass is the advisory lock class under which Migrate runs.
const migrateLockClass = 1718775090 // 'frm2'

// migration is one numbered up migration.
type migration struct {
	version int
	name    string
	sql     string
}

// upMigrations returns the up migrations in version order.
func upMigrations() ([]migration, error) {
	names, err := fs.Glob(Migrations, "*.up.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNN_name.up.sql", name)
		}
		sql, err := fs.ReadFile(Migrations, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(name, ".up.sql"), sql: string(sql)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Migrate creates the schema if needed and applies the migrations it lacks,
// in one transaction, recording them in the schema's freemium_migrations
// table. It is idempotent, and safe when many instances start at once: they
// take turns on an advisory lock. Do not also apply Migrations with a tool
// to the same schema: each would apply them again.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := upMigrations()
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	schema := pgx.Identifier{s.schema}.Sanitize()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", migrateLockClass, s.schema); err != nil {
			return fmt.Errorf("pgstore: migrate %s: %w", s.schema, err)
		}
		steps := []string{
			"CREATE SCHEMA IF NOT EXISTS " + schema,
			"SET LOCAL search_path TO " + schema,
			`CREATE TABLE IF NOT EXISTS ` + migrationTable + ` (
				version    integer     PRIMARY KEY,
				name       text        NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`,
		}
		for _, sql := range steps {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("pgstore: migrate %s: %w", s.schema, err)
			}
		}
		var applied int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+migrationTable).Scan(&applied); err != nil {
			return fmt.Errorf("pgstore: migrate %s: %w", s.schema, err)
		}
		for _, m := range ms {
			if m.version <= applied {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("pgstore: migrate %s: %s: %w", s.schema, m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+migrationTable+" (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return fmt.Errorf("pgstore: migrate %s: %s: %w", s.schema, m.name, err)
			}
		}
		return nil
	})
}

// MigrationState is a migration and whether Migrate applied it to the
// store's schema.
type MigrationState struct {
	Version   int       `json:"version"`
	Name      string    `json:"name"`
	AppliedAt time.Time `json:"applied_at,omitzero"` // zero: pending
}

// MigrationStatus lists the migrations in version order, each with when
// Migrate applied it to the store's schema, or pending. It writes nothing:
// a schema Migrate never ran on has them all pending.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	ms, err := upMigrations()
	if err != nil {
		return nil, fmt.Errorf("pgstore: migration status: %w", err)
	}
	table := pgx.Identifier{s.schema, migrationTable}.Sanitize()
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
		return nil, fmt.Errorf("pgstore: migration status of %s: %w", s.schema, err)
	}
	applied := map[int]time.Time{}
	if exists {
		rows, _ := s.pool.Query(ctx, "SELECT version, applied_at FROM "+table)
		var v int
		var at time.Time
		if _, err := pgx.ForEachRow(rows, []any{&v, &at}, func() error { applied[v] = at.UTC(); return nil }); err != nil {
			return nil, fmt.Errorf("pgstore: migration status of %s: %w", s.schema, err)
		}
	}
	out := make([]MigrationState, len(ms))
	for i, m := range ms {
		out[i] = MigrationState{Version: m.version, Name: m.name, AppliedAt: applied[m.version]}
	}
	return out, nil
}

// gooseView returns the up and down files of fsys as goose's annotated
// files.
func gooseView(fsys fs.FS) fs.FS {
	view := fstest.MapFS{}
	ups, err := fs.Glob(fsys, "*.up.sql")
	if err != nil {
		panic(err) // the pattern is valid
	}
	for _, up := range ups {
		name := strings.TrimSuffix(up, ".up.sql")
		upSQL, err := fs.ReadFile(fsys, up)
		if err != nil {
			panic(err) // embedded
		}
		downSQL, err := fs.ReadFile(fsys, name+".down.sql")
		if err != nil {
			panic(fmt.Sprintf("pgstore: migration %s has no down file", name))
		}
		body := "-- +goose Up\n-- +goose StatementBegin\n" + string(upSQL) + "-- +goose StatementEnd\n\n" +
			"-- +goose Down\n-- +goose StatementBegin\n" + string(downSQL) + "-- +goose StatementEnd\n"
		view[path.Clean(name+".sql")] = &fstest.MapFile{Data: []byte(body), Mode: 0o444}
	}
	return view
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // dir is a valid path
	}
	return sub
}
