package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/pgstore"
)

// TestPostgresHotStatementsKeepGenericPlans checks that Postgres settles on
// a generic plan for Load, Reserve (a fixed window's statement and an Every
// one's), Commit, Cancel and Record, as pgx prepares them: a statement whose
// generic plan looks costlier than its custom plans is planned again on
// every call, which costs more than the statement itself (moving the
// reservations' pruning into Reserve's statement once did that).
func TestPostgresHotStatementsKeepGenericPlans(t *testing.T) {
	ctx := context.Background()
	_, schema := testenv.PostgresSchema(t)
	cfg, err := pgxpool.ParseConfig(os.Getenv(testenv.DatabaseURL))
	require.NoError(t, err)
	cfg.MaxConns = 1 // so that every statement is prepared on one connection
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	now := freemiumtest.T0
	fixed := freemium.Window{Start: now, End: now.AddDate(0, 1, 0)}
	for i := range 12 {
		// Both Reserve statements: a fixed window's and an Every one's.
		for user, w := range map[string]freemium.Window{"u1": fixed, "u2": {Every: time.Hour}} {
			id := fmt.Sprint("rsv_", user, i)
			_, err := store.Load(ctx, user, now, func(freemium.Account) freemium.Window { return w })
			require.NoError(t, err)
			h := freemium.Hold{ID: id, UserID: user, Window: w, Tokens: 10, Limit: 1 << 40, ExpiresAt: now.Add(time.Hour)}
			r, err := store.Reserve(ctx, h, now)
			require.NoError(t, err)
			require.True(t, r.Admitted)
			if i%2 == 0 {
				require.NoError(t, store.Commit(ctx, h.Ref(r), 5, now))
			} else {
				require.NoError(t, store.Cancel(ctx, h.Ref(r), now))
			}
			require.NoError(t, store.Record(ctx, user, w, freemium.Unlimited, 3, "", now))
		}
	}
	rows, err := pool.Query(ctx, "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
	require.NoError(t, err)
	seen := 0
	for rows.Next() {
		var statement string
		var generic, custom int64
		require.NoError(t, rows.Scan(&statement, &generic, &custom))
		if !strings.Contains(statement, schema) || generic+custom <= 5 {
			continue // not ours, or run too few times to choose (the slow paths)
		}
		seen++
		assert.Positive(t, generic, "custom plans only (%d) for:\n%s", custom, statement)
	}
	require.NoError(t, rows.Err())
	assert.GreaterOrEqual(t, seen, 6, "statements prepared")
}

// TestPostgresStatementParameterTypes prepares every statement of a
// pgstore.Store and checks that Postgres infers no 32-bit integer parameter:
// tokens, limits and durations are int64, and a placeholder that SQL does
// not cast can be inferred as int4 from a comparison with a literal (the
// older-window Reserve once refused every limit above 2^31-1 that way).
func TestPostgresStatementParameterTypes(t *testing.T) {
	ctx := context.Background()
	store := testenv.PostgresStore(t)
	conn, err := testenv.Pool(t).Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	for name, sql := range pgstore.Statements(store) {
		sd, err := conn.Conn().Prepare(ctx, "", sql)
		if !assert.NoError(t, err, name) {
			continue
		}
		for i, oid := range sd.ParamOIDs {
			assert.NotEqual(t, uint32(pgtype.Int4OID), oid, "%s: $%d is int4: cast it", name, i+1)
		}
	}
}

// TestPostgresKeysCompareAsBytes checks that the text keys every hot
// statement looks up by are in the C collation, whatever the database's:
// under another, each index comparison calls strcoll (migration 7).
func TestPostgresKeysCompareAsBytes(t *testing.T) {
	_, schema := testenv.PostgresSchema(t)
	rows, err := testenv.Pool(t).Query(context.Background(), `
		SELECT table_name || '.' || column_name, coalesce(collation_name, '') FROM information_schema.columns
		WHERE table_schema = $1`, schema)
	require.NoError(t, err)
	collations := map[string]string{}
	for rows.Next() {
		var column, collation string
		require.NoError(t, rows.Scan(&column, &collation))
		collations[column] = collation
	}
	require.NoError(t, rows.Err())
	for _, column := range []string{"accounts.user_id", "reservations.id", "reservations.user_id", "usage_windows.user_id",
		"usage_keys.user_id", "usage_keys.key", "subscriptions.user_id", "customers.customer_id", "notifications.id"} {
		assert.Equal(t, "C", collations[column], column)
	}
}

// committedChain commits three holds of u1 in a row, each on the account
// row alone: x (expiring in two days, so it outlives the others' rows), y
// and z (a minute), so that y's row carries x's commit, z's row y's, and
// the account z's. It returns the store's schema and the holds' refs.
func committedChain(t *testing.T) (*pgstore.Store, string, []freemium.HoldRef) {
	t.Helper()
	ctx := context.Background()
	store, schema := testenv.PostgresSchema(t)
	w := chainWindow(freemium.Account{})
	require.NoError(t, store.Record(ctx, "u1", w, freemium.Unlimited, 1, "", freemiumtest.T0))
	var refs []freemium.HoldRef
	for _, id := range []string{"x", "y", "z"} {
		ttl := time.Minute
		if id == "x" {
			ttl = 48 * time.Hour
		}
		h := freemium.Hold{ID: id, UserID: "u1", Window: w, Tokens: 10, Limit: freemium.Unlimited,
			ExpiresAt: freemiumtest.T0.Add(ttl)}
		r, err := store.Reserve(ctx, h, freemiumtest.T0)
		require.NoError(t, err)
		refs = append(refs, h.Ref(r))
		require.NoError(t, store.Commit(ctx, h.Ref(r), 5, freemiumtest.T0))
	}
	var carried []string
	rows, err := testenv.Pool(t).Query(ctx, "SELECT committed_prev FROM "+schema+".reservations WHERE row_state = 'held' ORDER BY id")
	require.NoError(t, err)
	for rows.Next() {
		var prev pgtype.Text
		require.NoError(t, rows.Scan(&prev))
		carried = append(carried, prev.String)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"", "x", "y"}, carried, "each row carries the commit before it")
	return store, schema, refs
}

// chainWindow is the window of committedChain's holds.
func chainWindow(freemium.Account) freemium.Window {
	return freemium.Window{Start: freemiumtest.T0, End: freemiumtest.T0.AddDate(0, 1, 0)}
}

// loadChain loads u1 of committedChain at now.
func loadChain(t *testing.T, store *pgstore.Store, now time.Time) freemium.State {
	t.Helper()
	st, err := store.Load(context.Background(), "u1", now, chainWindow)
	require.NoError(t, err)
	return st
}

// TestPostgresPruneHandsOnCommits prunes the rows of y and z, which carry
// the commits of x and y: x's row, kept, must say committed, so that
// another Commit or a Cancel of x changes nothing.
func TestPostgresPruneHandsOnCommits(t *testing.T) {
	ctx := context.Background()
	store, schema, refs := committedChain(t)
	now := freemiumtest.T0.Add(24*time.Hour + 2*time.Minute)
	require.NoError(t, pgstore.Prune(store, now))
	var ids, states []string
	rows, err := testenv.Pool(t).Query(ctx, "SELECT id, row_state FROM "+schema+".reservations ORDER BY id")
	require.NoError(t, err)
	for rows.Next() {
		var id, state string
		require.NoError(t, rows.Scan(&id, &state))
		ids, states = append(ids, id), append(states, state)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{"x"}, ids)
	assert.Equal(t, []string{"committed"}, states)

	require.NoError(t, store.Commit(ctx, freemium.HoldRef{ID: "x", UserID: "u1"}, 100, now))
	require.NoError(t, store.Commit(ctx, refs[0], 100, now))
	require.NoError(t, store.Cancel(ctx, freemium.HoldRef{ID: "x", UserID: "u1"}, now))
	st := loadChain(t, store, now)
	assert.Equal(t, int64(16), st.Used)
	assert.Equal(t, int64(0), st.Reserved)
}

// migrateDown runs the down migrations of schema from the latest version to
// version from, and returns the connection it used.
// TestPostgresMigration8Down takes the chain down to version 7 (through
// every later version's down migration), where each row says committed
// itself, and up again.
// TestPostgresMigration9DownAndUp takes a mirror of two subscriptions down
// to version 8, which keeps the one that gives the most access, and up
// again.
// Migration 9 writes a version-8 mirror's times into JSON that Go reads,
// whatever the session's time zone: Go's zero time (a subscription without a
// known period) in Europe/Berlin would otherwise read
// "0001-01-01T00:53:28+00:53:28", which Go cannot parse.
// TestPostgresMigration10RecountsHolds takes the state case 8 left at
// version 8 (a recount stamped at B's time, then A's hold of 900 placed and
// counted although it expires before the stamp; an earlier hold dropped by
// the recount) through migration 10: the 900 are given back by their
// Commit, and the dropped hold gives back nothing.
