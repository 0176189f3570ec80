package pgstore_test

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium/pgstore"
)

var update = flag.Bool("update", false, "rewrite the expanded statements in testdata/sql")

// TestStatementsGolden keeps every statement the store runs, fully
// expanded for the default schema, in testdata/sql/NAME.sql: the SQL as
// Postgres receives it, so that a change to a statement or a shared piece
// of one is a readable diff there. After a change that is meant, run
// go test ./pgstore -run TestStatementsGolden -update.
func TestStatementsGolden(t *testing.T) {
	s, err := pgstore.New(new(pgxpool.Pool), nil) // never connects
	require.NoError(t, err)
	dir := filepath.Join("testdata", "sql")
	statements := pgstore.Statements(s)
	if *update {
		require.NoError(t, os.RemoveAll(dir))
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	var names []string
	for name, sql := range statements {
		names = append(names, name+".sql")
		got := strings.TrimSpace(sql) + "\n"
		path := filepath.Join(dir, name+".sql")
		if *update {
			require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		if assert.NoError(t, err, "%s: run with -update to write it", path) {
			assert.Equal(t, string(want), got, "%s differs from the statement: if the change is meant, run with -update", path)
		}
	}
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, f := range files {
		assert.True(t, slices.Contains(names, f.Name()), "%s is no statement's: run with -update", f.Name())
	}
}
