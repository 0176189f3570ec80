package pgstore_test

import (
	"context"
	"crypto/rand"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/pgstore"
)

// The migration pairs, and the goose view of them.
func TestMigrationFiles(t *testing.T) {
	names, err := fs.Glob(pgstore.Migrations, "*")
	require.NoError(t, err)
	assert.Equal(t, []string{"001_init.down.sql", "001_init.up.sql", "002_credits.down.sql", "002_credits.up.sql"}, names)
	goose, err := fs.Glob(pgstore.GooseMigrations, "*")
	require.NoError(t, err)
	assert.Equal(t, []string{"001_init.sql", "002_credits.sql"}, goose)
	body, err := fs.ReadFile(pgstore.GooseMigrations, "001_init.sql")
	require.NoError(t, err)
	up, down, ok := strings.Cut(string(body), "-- +goose Down")
	require.True(t, ok)
	assert.Contains(t, up, "CREATE TABLE accounts")
	assert.Contains(t, down, "DROP TABLE accounts")
}

// objects lists the tables, functions and types in schema.
func objects(t *testing.T, schema string) []string {
	t.Helper()
	rows, err := testenv.Pool(t).Query(context.Background(), `
		SELECT 'table ' || table_name FROM information_schema.tables WHERE table_schema = $1
		UNION ALL SELECT 'function ' || routine_name FROM information_schema.routines WHERE routine_schema = $1
		UNION ALL SELECT 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
			WHERE n.nspname = $1 AND t.typtype NOT IN ('b', 'p') AND t.typrelid = 0
		ORDER BY 1`, schema)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

// Migrate is idempotent and safe from many instances at once; it records
// its version in freemium_migrations, a name no migration tool uses; the
// down migration leaves only that table.
func TestMigrateUpAndDown(t *testing.T) {
	ctx := context.Background()
	s, schema := testenv.PostgresSchema(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			other, err := pgstore.New(testenv.Pool(t), &pgstore.Config{Schema: schema})
			if assert.NoError(t, err) {
				assert.NoError(t, other.Migrate(ctx))
			}
		})
	}
	wg.Wait()
	require.NoError(t, s.Migrate(ctx))
	var versions []string
	rows, err := testenv.Pool(t).Query(ctx, "SELECT version || ' ' || name FROM "+schema+".freemium_migrations ORDER BY version")
	require.NoError(t, err)
	versions, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"1 001_init", "2 002_credits"}, versions)
	assert.Equal(t, []string{
		"function raise_retry",
		"table accounts", "table conversions", "table customers", "table freemium_migrations", "table grants",
		"table ledger", "table notifications", "table reservations", "table subscriptions", "table usage_keys",
		"table usage_windows",
	}, objects(t, schema))

	for _, name := range []string{"002_credits.down.sql", "001_init.down.sql"} {
		down, err := fs.ReadFile(pgstore.Migrations, name)
		require.NoError(t, err)
		err = pgx.BeginFunc(ctx, testenv.Pool(t), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+schema); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, string(down))
			return err
		})
		require.NoError(t, err, name)
	}
	assert.Equal(t, []string{"table freemium_migrations"}, objects(t, schema), "down drops everything up created")
}

// MigrationStatus reads what Migrate applied, and writes nothing: on a
// schema Migrate never ran on, every migration is pending and the schema
// is still absent.
func TestMigrationStatus(t *testing.T) {
	ctx := context.Background()
	schema := "status_" + strings.ToLower(rand.Text()[:10])
	s, err := pgstore.New(testenv.Pool(t), &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	t.Cleanup(func() { testenv.Pool(t).Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	st, err := s.MigrationStatus(ctx)
	require.NoError(t, err)
	assert.Equal(t, []pgstore.MigrationState{{Version: 1, Name: "001_init"}, {Version: 2, Name: "002_credits"}}, st)
	assert.Empty(t, objects(t, schema), "nothing written")

	require.NoError(t, s.Migrate(ctx))
	st, err = s.MigrationStatus(ctx)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.False(t, st[0].AppliedAt.IsZero(), "applied")
	assert.False(t, st[1].AppliedAt.IsZero(), "applied")
}
