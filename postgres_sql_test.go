package freemium

import (
	"context"
	"crypto/rand"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestPostgresStatementParameterTypes prepares every statement of a
// PostgresStore and checks that Postgres infers no 32-bit integer parameter:
// tokens, limits and durations are int64, and a placeholder that SQL does
// not cast can be inferred as int4 from a comparison with a literal (the
// older-window Reserve once refused every limit above 2^31-1 that way).
func TestPostgresStatementParameterTypes(t *testing.T) {
	url := os.Getenv("FREEMIUM_TEST_DATABASE_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("FREEMIUM_TEST_DATABASE_URL is not set, and CI=true: the Postgres tests must run in CI (scripts/test.sh sets it)")
		}
		t.Skip("FREEMIUM_TEST_DATABASE_URL is not set: skipping the Postgres tests (scripts/test.sh starts a Postgres and sets it)")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := NewPostgresStore(pool, &PostgresConfig{Schema: "test_" + strings.ToLower(rand.Text())})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := pool.Exec(context.Background(), "DROP SCHEMA "+s.schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	}()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	statements := reflect.ValueOf(s.sql)
	for i := range statements.NumField() {
		name := statements.Type().Field(i).Name
		sd, err := conn.Conn().Prepare(ctx, "", statements.Field(i).String())
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for j, oid := range sd.ParamOIDs {
			if oid == pgtype.Int4OID {
				t.Errorf("%s: $%d is int4: cast it", name, j+1)
			}
		}
	}
}
