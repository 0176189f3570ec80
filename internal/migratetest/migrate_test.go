package migratetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // the pgx5:// driver
	"github.com/golang-migrate/migrate/v4/source/iofs"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for goose
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/pgstore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newSchema creates an empty schema, dropped when the test ends, and
// returns its name and a database URL whose search_path is that schema:
// what both tools need, since the migration's objects are unqualified.
func newSchema(t *testing.T) (schema, dbURL string) {
	t.Helper()
	base := testenv.Need(t, testenv.DatabaseURL, "the migration tool tests")
	schema = "tool_" + strings.ToLower(rand.Text())
	_, err := testenv.Pool(t).Exec(context.Background(), "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() { testenv.DropSchema(t, schema) })
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return schema, u.String()
}

// storeWorks runs the store conformance suite on pgstore.Stores, each on a
// new schema that apply migrated, without calling Migrate.
func storeWorks(t *testing.T, apply func(t *testing.T) string) {
	t.Helper()
	freemiumtest.RunStoreTests(t, func(t *testing.T) freemium.Store {
		s, err := pgstore.New(testenv.Pool(t), &pgstore.Config{Schema: apply(t)})
		require.NoError(t, err)
		return s
	})
}

// golangMigrate applies pgstore.Migrations to a new schema with
// golang-migrate, through its iofs source; with downUp, it then goes down
// and up again.
func golangMigrate(t *testing.T, downUp bool) string {
	t.Helper()
	schema, dbURL := newSchema(t)
	src, err := iofs.New(pgstore.Migrations, ".")
	require.NoError(t, err)
	m, err := migrate.NewWithSourceInstance("iofs", src, "pgx5"+strings.TrimPrefix(dbURL, "postgres"))
	require.NoError(t, err)
	defer m.Close()
	require.NoError(t, m.Up())
	if downUp {
		require.NoError(t, m.Down())
		require.NoError(t, m.Up())
	}
	if err := m.Up(); !errors.Is(err, migrate.ErrNoChange) {
		t.Fatalf("a second Up: %v, want ErrNoChange", err)
	}
	return schema
}

// gooseMigrate applies pgstore.GooseMigrations to a new schema; with
// downUp, it then goes down and up again.
func gooseMigrate(t *testing.T, downUp bool) string {
	t.Helper()
	schema, dbURL := newSchema(t)
	db, err := sql.Open("pgx", dbURL)
	require.NoError(t, err)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, pgstore.GooseMigrations)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = p.Up(ctx)
	require.NoError(t, err)
	if downUp {
		_, err = p.DownTo(ctx, 0)
		require.NoError(t, err)
		_, err = p.Up(ctx)
		require.NoError(t, err)
	}
	return schema
}

// After golang-migrate or goose, the store works without Migrate; and
// after each has taken the migration down and up again.
func TestGolangMigrate(t *testing.T) {
	storeWorks(t, func(t *testing.T) string { return golangMigrate(t, false) })
	s, err := pgstore.New(testenv.Pool(t), &pgstore.Config{Schema: golangMigrate(t, true)})
	require.NoError(t, err)
	require.NoError(t, s.MarkFirstReportUsed(context.Background(), "u1", freemiumtest.T0))
}

func TestGoose(t *testing.T) {
	storeWorks(t, func(t *testing.T) string { return gooseMigrate(t, false) })
	s, err := pgstore.New(testenv.Pool(t), &pgstore.Config{Schema: gooseMigrate(t, true)})
	require.NoError(t, err)
	require.NoError(t, s.MarkFirstReportUsed(context.Background(), "u1", freemiumtest.T0))
}

// golang-migrate and Migrate can share a schema: each keeps its own table,
// and the host's own migrations run beside the store's.
func TestGolangMigrateBesideMigrate(t *testing.T) {
	ctx := context.Background()
	schema, dbURL := newSchema(t)
	s, err := pgstore.New(testenv.Pool(t), &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctx))
	host := fstest.MapFS{
		"1_reports.up.sql":   {Data: []byte("CREATE TABLE reports (id bigint PRIMARY KEY)")},
		"1_reports.down.sql": {Data: []byte("DROP TABLE reports")},
	}
	src, err := iofs.New(host, ".")
	require.NoError(t, err)
	m, err := migrate.NewWithSourceInstance("iofs", src, "pgx5"+strings.TrimPrefix(dbURL, "postgres"))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	require.NoError(t, m.Up())
	require.NoError(t, s.Migrate(ctx), "Migrate again beside golang-migrate's table")
	var tables []string
	rows, err := testenv.Pool(t).Query(ctx, `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = $1 AND table_name IN ('reports', 'schema_migrations', 'freemium_migrations', 'accounts') ORDER BY 1`, schema)
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"accounts", "freemium_migrations", "reports", "schema_migrations"}, tables)
}
