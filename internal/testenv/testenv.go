// Package testenv gives the module's tests what they need from outside the
// process: a Postgres database and a stripe-mock. Each is found by an
// environment variable; a test that needs one is skipped, saying why, when
// it is unset outside CI, and fails when CI=true (scripts/test.sh sets both).
package testenv

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/pgstore"
)

// The environment variables the tests read.
const (
	DatabaseURL   = "FREEMIUM_TEST_DATABASE_URL" // a Postgres the tests may create schemas in
	StripeMockURL = "FREEMIUM_TEST_STRIPE_URL"   // a stripe-mock's HTTP address
)

// Need returns the value of the environment variable name. When it is
// unset, the test is skipped outside CI and fails under CI=true; what says
// what the variable is for.
func Need(tb testing.TB, name, what string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s is not set, and CI=true: %s must run in CI (scripts/test.sh sets it)", name, what)
	}
	tb.Skipf("%s is not set: skipping %s (scripts/test.sh sets it up)", name, what)
	return ""
}

var pool struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}

// Pool returns the process's shared pool on DatabaseURL (see Need). Close
// it with ClosePool at the end of TestMain.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := Need(tb, DatabaseURL, "the Postgres tests")
	pool.once.Do(func() {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			pool.err = err
			return
		}
		cfg.MaxConns = 16
		pool.pool, pool.err = pgxpool.NewWithConfig(context.Background(), cfg)
	})
	if pool.err != nil {
		tb.Fatalf("connecting to %s: %v", DatabaseURL, pool.err)
	}
	return pool.pool
}

// ClosePool closes the pool Pool opened, if any.
func ClosePool() {
	if pool.pool != nil {
		pool.pool.Close()
	}
}

// PostgresStore returns a migrated pgstore.Store in a schema of its own,
// dropped when the test ends.
func PostgresStore(tb testing.TB) *pgstore.Store {
	tb.Helper()
	s, _ := PostgresSchema(tb)
	return s
}

// PostgresSchema is PostgresStore, and the name of its schema.
func PostgresSchema(tb testing.TB) (*pgstore.Store, string) {
	tb.Helper()
	p := Pool(tb)
	schema := "test_" + strings.ToLower(rand.Text())
	s, err := pgstore.New(p, &pgstore.Config{Schema: schema})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { DropSchema(tb, schema) })
	if err := s.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return s, schema
}

// DropSchema drops schema and everything in it.
func DropSchema(tb testing.TB, schema string) {
	tb.Helper()
	if _, err := Pool(tb).Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
		tb.Errorf("dropping schema %s: %v", schema, err)
	}
}

// Stores names a constructor for each Store the tests run on: "Memory" and
// "Postgres" (each in a schema of its own; see PostgresStore).
var Stores = map[string]func(t *testing.T) freemium.Store{
	"Memory":   func(*testing.T) freemium.Store { return freemium.NewMemoryStore() },
	"Postgres": func(t *testing.T) freemium.Store { return PostgresStore(t) },
}

// EachStore runs f as a subtest on each Store, a new one per subtest. The
// Postgres subtest is skipped or fails as Need says.
func EachStore(t *testing.T, f func(t *testing.T, store freemium.Store)) {
	t.Helper()
	for _, name := range []string{"Memory", "Postgres"} {
		t.Run(name, func(t *testing.T) { f(t, Stores[name](t)) })
	}
}

// Measure runs op and baseline alternately for b.N rounds and reports both.
func Measure(b *testing.B, baseline, op func(i int) error) {
	b.Helper()
	var baseT, opT time.Duration
	i := 0
	for b.Loop() {
		t0 := time.Now()
		if err := baseline(i); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := op(i); err != nil {
			b.Fatal(err)
		}
		opT += time.Since(t1)
		baseT += t1.Sub(t0)
		i++
	}
	b.ReportMetric(float64(opT.Nanoseconds())/float64(i), "ns/op")
	b.ReportMetric(float64(baseT.Nanoseconds())/float64(i), "base-ns/op")
	b.ReportMetric(float64(opT)/float64(baseT), "x-base")
}

// Main runs a package's tests for its TestMain, then closes the shared pool
// and checks that no goroutine leaked (pooled keep-alive connections of the
// default transport are not leaks), and exits.
func Main(m *testing.M) {
	code := m.Run()
	ClosePool()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
