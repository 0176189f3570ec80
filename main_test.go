package freemium_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/freemiumkit/freemium"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeTestPool()
	// Pooled keep-alive connections (StripeSubscriptions' default client
	// uses the default transport) are not leaks.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var testPool struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}

// pgPool returns the shared test pool on FREEMIUM_TEST_DATABASE_URL. Without
// the URL the test is skipped, unless CI=true, where it fails.
func pgPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := os.Getenv("FREEMIUM_TEST_DATABASE_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("FREEMIUM_TEST_DATABASE_URL is not set, and CI=true: the Postgres tests must run in CI (scripts/test.sh sets it)")
		}
		tb.Skip("FREEMIUM_TEST_DATABASE_URL is not set: skipping the Postgres tests (scripts/test.sh starts a Postgres and sets it)")
	}
	testPool.once.Do(func() {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			testPool.err = err
			return
		}
		cfg.MaxConns = 16
		testPool.pool, testPool.err = pgxpool.NewWithConfig(context.Background(), cfg)
	})
	require.NoError(tb, testPool.err, "connecting to FREEMIUM_TEST_DATABASE_URL")
	return testPool.pool
}

func closeTestPool() {
	if testPool.pool != nil {
		testPool.pool.Close()
	}
}

// newPostgresStore returns a migrated PostgresStore in a schema of its own,
// dropped when the test ends.
func newPostgresStore(tb testing.TB) *freemium.PostgresStore {
	tb.Helper()
	s, _ := newPostgresSchema(tb)
	return s
}

// newPostgresSchema is newPostgresStore, and the name of its schema.
func newPostgresSchema(tb testing.TB) (*freemium.PostgresStore, string) {
	tb.Helper()
	pool := pgPool(tb)
	schema := "test_" + strings.ToLower(rand.Text())
	s, err := freemium.NewPostgresStore(pool, &freemium.PostgresConfig{Schema: schema})
	require.NoError(tb, err)
	require.NoError(tb, s.Migrate(context.Background()))
	tb.Cleanup(func() {
		_, err := pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		require.NoError(tb, err)
	})
	return s, schema
}
