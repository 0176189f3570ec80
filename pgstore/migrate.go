package pgstore

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/freemiumkit/freemium/pgstore/migrations"
	"github.com/jackc/pgx/v5"
)

// Migrations are the SQL files Store.Migrate applies, numbered
// NNN_name.up.sql and NNN_name.down.sql, for hosts that run their own
// migration tool. They create unqualified objects: run them with search_path
// set to the schema, which must exist.
var Migrations fs.FS = migrations.FS

// migrateLockClass is the advisory lock class under which Migrate runs.
const migrateLockClass = 1718775090 // 'frm2'

// Migrate creates the schema if needed and applies the migrations it lacks,
// in one transaction. It is idempotent, and safe when many instances start at
// once: they take turns on an advisory lock.
func (s *Store) Migrate(ctx context.Context) error {
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
