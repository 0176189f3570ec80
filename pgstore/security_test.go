package pgstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/pgstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pgstore.New refuses a schema name that is not a plain lower-case
// identifier, or that every database has (public, information_schema),
// naming the field, before any SQL runs; a 63-byte name, the
// longest Postgres keeps, is taken.
func TestSecuritySchemaNames(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Pool(t)
	hostile := []string{
		"freemium; DROP TABLE x",
		"pg_freemium",        // Postgres reserves the prefix
		"public",             // every database has it, shared with other tables
		"information_schema", // likewise, and Postgres's own
		`freemium"; DROP SCHEMA public CASCADE; --`,
		`"quoted"`,
		"Upper",
		strings.Repeat("a", 64),
		" ",
		"\t",
		"1starts_with_a_digit",
		"dash-ed",
		"dot.ted",
		"spa ce",
		"fréemium",
		"ｆｒｅｅｍｉｕｍ", // fullwidth
		"freemium\x00",
		"freemium\n",
	}
	folded := make([]string, 0, 3*len(hostile))
	for _, name := range hostile {
		name = strings.ReplaceAll(name, "\x00", "") // Postgres text holds no NUL
		folded = append(folded, name, strings.ToLower(name), strings.Trim(name, `"`))
	}
	// Some fold to "freemium", the default, which a host's own store in
	// the test database may have created: only a new schema counts.
	before := schemasNamed(t, pool, folded)
	for _, name := range hostile {
		s, err := pgstore.New(pool, &pgstore.Config{Schema: name})
		require.Error(t, err, "schema %q", name)
		assert.Nil(t, s)
		assert.Contains(t, err.Error(), "pgstore: Config.Schema", "schema %q: the error names the field", name)
	}
	assert.Equal(t, before, schemasNamed(t, pool, folded), "no schema was created for a refused name")

	// The longest name that fits: 63 bytes.
	longest := "test_" + strings.Repeat("x", 58)
	require.Len(t, longest, 63)
	s, err := pgstore.New(pool, &pgstore.Config{Schema: longest})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+longest+" CASCADE")
		assert.NoError(t, err)
	})
	require.NoError(t, s.Migrate(ctx))
	assert.Equal(t, []string{longest}, schemasNamed(t, pool, []string{longest}), "Postgres kept all 63 bytes")

	// An empty name is the default, "freemium", not an error.
	s, err = pgstore.New(pool, &pgstore.Config{})
	require.NoError(t, err)
	assert.NotNil(t, s)
}

// schemasNamed returns the schemas among names that exist.
func schemasNamed(t *testing.T, pool *pgxpool.Pool, names []string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		"SELECT nspname::text FROM pg_namespace WHERE nspname::text = ANY($1::text[]) ORDER BY 1", names)
	require.NoError(t, err)
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return found
}
