package pgstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/pgstore"
	"github.com/freemiumkit/freemium/pgstore/migrations"
)

func TestPostgresMigrationsKeepState(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Pool(t)
	conn, schema := migratedTo(t, 3)
	// u1: usage in two months, a live first-report hold and an expired one;
	// u2: only an upgrade prompt's mark.
	nov, dec := freemiumtest.T0, freemiumtest.T0.AddDate(0, 1, 0)
	now := dec.Add(time.Hour)
	_, err := conn.Exec(ctx, `INSERT INTO accounts (user_id, anchor, first_report_used, holds) VALUES ('u1', $1, false,
		ARRAY[ROW('h1', 7, $2, true)::hold, ROW('h0', 100, $3, false)::hold])`, nov, now.Add(time.Minute), now.Add(-time.Minute))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO reservations (id, user_id, period_start, first_report, expires_at) VALUES
		('h1', 'u1', $1, true, $2), ('h0', 'u1', $1, false, $3)`, dec, now.Add(time.Minute), now.Add(-time.Minute))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO usage_periods (user_id, period_start, used, notified) VALUES
		('u1', $1, 40, 0), ('u1', $2, 90, 4), ('u2', $2, 0, 2)`, dec, nov)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "RESET search_path")
	require.NoError(t, err)

	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	require.NoError(t, store.Migrate(ctx))
	month := func(start time.Time) func(freemium.Account) freemium.Window {
		return func(freemium.Account) freemium.Window {
			return freemium.Window{Start: start, End: start.AddDate(0, 1, 0)}
		}
	}
	st, err := store.Load(ctx, "u1", now, month(dec))
	require.NoError(t, err)
	assert.Equal(t, int64(40), st.Used, "latest window's usage")
	assert.Equal(t, int64(7), st.Reserved, "live hold only")
	assert.True(t, st.FirstReportHeld)
	st, err = store.Load(ctx, "u1", now, month(nov))
	require.NoError(t, err)
	assert.Equal(t, int64(90), st.Used, "older window's usage")
	assert.True(t, st.Notified.Has(freemium.LimitReached))
	st, err = store.Load(ctx, "u2", now, month(nov))
	require.NoError(t, err)
	assert.True(t, st.Notified.Has(freemium.UpgradePrompt), "the mark of a user with no account row")
	assert.True(t, st.Account.Anchor.IsZero(), "a mark is not activity")

	// An instance of version 3 still running fails on the old table name
	// instead of writing usage the account rows would not see.
	_, err = pool.Exec(ctx, "SELECT used FROM "+schema+".usage_periods")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42P01", pgErr.Code, "undefined table")
	// Nor can one of version 4 place holds on the account row.
	_, err = pool.Exec(ctx, "SELECT holds FROM "+schema+".accounts")
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42703", pgErr.Code, "undefined column")

	// The account's latest window stays right from here on.
	h2 := freemium.Hold{ID: "h2", UserID: "u1", Window: freemium.Window{Start: dec, End: dec.AddDate(0, 1, 0)},
		Tokens: 60, Limit: 107, ExpiresAt: now.Add(time.Minute)}
	r, err := store.Reserve(ctx, h2, now)
	require.NoError(t, err)
	assert.True(t, r.Admitted, "40 used + 7 held + 60 = 107")
	require.NoError(t, store.Commit(ctx, h2.Ref(r), 50, now))
	st, err = store.Load(ctx, "u1", now, month(dec))
	require.NoError(t, err)
	assert.Equal(t, int64(90), st.Used)
	assert.Equal(t, int64(7), st.Reserved)
	// A hold placed before the migration gives its tokens back.
	require.NoError(t, store.Commit(ctx, freemium.HoldRef{ID: "h1", UserID: "u1"}, 5, now))
	st, err = store.Load(ctx, "u1", now, month(dec))
	require.NoError(t, err)
	assert.Equal(t, int64(95), st.Used)
	assert.Equal(t, int64(0), st.Reserved)
	assert.True(t, st.FirstReportUsed)
	assert.False(t, st.FirstReportHeld)
}

func TestPostgresMigration6UpAndDown(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Pool(t)
	conn, schema := migratedTo(t, 5)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := conn.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	// Version 5: usage in November and December, the account's copy of
	// December's row.
	nov, dec := freemiumtest.T0, freemiumtest.T0.AddDate(0, 1, 0)
	now := dec.Add(time.Hour)
	exec(`INSERT INTO accounts (user_id, anchor, win_start, win_used, win_notified) VALUES ('u1', $1, $2, 40, 1)`, nov, dec)
	exec(`INSERT INTO usage_windows (user_id, period_start, used, notified) VALUES ('u1', $1, 90, 4), ('u1', $2, 40, 1)`, nov, dec)
	exec("RESET search_path")

	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	require.NoError(t, store.Migrate(ctx))
	usage := func(start time.Time) freemium.State {
		t.Helper()
		st, err := store.Load(ctx, "u1", now, func(freemium.Account) freemium.Window {
			return freemium.Window{Start: start, End: start.AddDate(0, 1, 0)}
		})
		require.NoError(t, err)
		return st
	}
	assert.Equal(t, int64(40), usage(dec).Used)
	assert.Equal(t, freemium.NotifiedKinds(1), usage(dec).Notified)
	assert.Equal(t, int64(90), usage(nov).Used)
	// An instance of version 5 fails on the old column names instead of
	// overwriting the account's usage with its stale copy.
	_, err = pool.Exec(ctx, "SELECT win_used FROM "+schema+".accounts")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42703", pgErr.Code, "undefined column")

	// December's usage now lives on the account row only.
	require.NoError(t, store.Record(ctx, "u1", freemium.Window{Start: dec, End: dec.AddDate(0, 1, 0)}, 5, "", now))
	var rowUsed int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT used FROM "+schema+".usage_windows WHERE period_start = $1", dec).Scan(&rowUsed))
	assert.Equal(t, int64(40), rowUsed, "December's row is stale")
	assert.Equal(t, int64(45), usage(dec).Used)

	// Down to version 5: the row holds December's usage again, under
	// version 5's names.
	exec("SET search_path TO " + schema)
	ms, err := migrations.Up()
	require.NoError(t, err)
	for i := len(ms) - 1; i >= 5; i-- {
		down, err := fs.ReadFile(pgstore.Migrations, ms[i].Name+".down.sql")
		require.NoError(t, err)
		exec(string(down))
		exec("DELETE FROM schema_migrations WHERE version = $1", ms[i].Version)
	}
	var winUsed, used int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT a.win_used, u.used FROM accounts a
		JOIN usage_windows u ON u.user_id = a.user_id AND u.period_start = a.win_start`).Scan(&winUsed, &used))
	assert.Equal(t, int64(45), winUsed)
	assert.Equal(t, int64(45), used)
	exec("RESET search_path")

	// And up again.
	require.NoError(t, store.Migrate(ctx))
	assert.Equal(t, int64(45), usage(dec).Used)
	assert.Equal(t, int64(90), usage(nov).Used)
}

func migratedTo(t *testing.T, n int) (*pgxpool.Conn, string) {
	t.Helper()
	ctx := context.Background()
	pool := testenv.Pool(t)
	schema := "test_" + strings.ToLower(rand.Text())
	t.Cleanup(func() {
		_, err := pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		require.NoError(t, err)
	})
	ms, err := migrations.Up()
	require.NoError(t, err)
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	t.Cleanup(conn.Release)
	for _, sql := range []string{
		"CREATE SCHEMA " + schema,
		"SET search_path TO " + schema,
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`,
	} {
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err)
	}
	for _, m := range ms[:n] {
		_, err := conn.Exec(ctx, m.SQL)
		require.NoError(t, err, m.Name)
		_, err = conn.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
		require.NoError(t, err)
	}
	return conn, schema
}

func migrateDown(t *testing.T, schema string, from int) *pgxpool.Conn {
	t.Helper()
	ctx := context.Background()
	ms, err := migrations.Up()
	require.NoError(t, err)
	conn, err := testenv.Pool(t).Acquire(ctx)
	require.NoError(t, err)
	t.Cleanup(conn.Release)
	_, err = conn.Exec(ctx, "SET search_path TO "+schema)
	require.NoError(t, err)
	for i := len(ms) - 1; i >= 0 && ms[i].Version >= from; i-- {
		down, err := fs.ReadFile(pgstore.Migrations, ms[i].Name+".down.sql")
		require.NoError(t, err)
		for _, sql := range []string{string(down), fmt.Sprint("DELETE FROM schema_migrations WHERE version = ", ms[i].Version)} {
			_, err := conn.Exec(ctx, sql)
			require.NoError(t, err, sql)
		}
	}
	_, err = conn.Exec(ctx, "RESET search_path")
	require.NoError(t, err)
	return conn
}

func TestPostgresMigration8Down(t *testing.T) {
	ctx := context.Background()
	store, schema, refs := committedChain(t)
	conn := migrateDown(t, schema, 8)
	var held int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM "+schema+".reservations WHERE state <> 'committed'").Scan(&held))
	assert.Zero(t, held, "reservations not committed at version 7")

	require.NoError(t, store.Migrate(ctx))
	for _, ref := range refs {
		require.NoError(t, store.Commit(ctx, ref, 100, freemiumtest.T0))
	}
	st := loadChain(t, store, freemiumtest.T0)
	assert.Equal(t, int64(16), st.Used)
	assert.Equal(t, int64(0), st.Reserved)
}

func TestPostgresMigration9DownAndUp(t *testing.T) {
	ctx := context.Background()
	store, schema := testenv.PostgresSchema(t)
	t0 := freemiumtest.T0
	sub := func(id string, status freemium.SubscriptionStatus, plan string) freemium.MirroredSubscription {
		return freemium.MirroredSubscription{Subscription: freemium.Subscription{ID: id, CustomerID: "cus_1", PriceIDs: []string{"price_" + id},
			Status: status, CurrentPeriodStart: t0, CurrentPeriodEnd: t0.AddDate(0, 1, 0)}, PaidPlan: plan}
	}
	_, err := store.PutSubscriptions(ctx, "u1", freemium.SubscriptionUpdate{Pulled: true, AsOf: t0, SyncedAt: t0,
		Subscriptions: []freemium.MirroredSubscription{sub("addon", freemium.StatusActive, ""), sub("pro", freemium.StatusPastDue, "pro")}}, t0)
	require.NoError(t, err)
	conn := migrateDown(t, schema, 9)
	var id, price, status string
	var pulled bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT sub_id, price_id, status, pulled FROM "+schema+".subscriptions WHERE user_id = 'u1'").
		Scan(&id, &price, &status, &pulled))
	assert.Equal(t, []any{"addon", "price_addon", "active", true}, []any{id, price, status, pulled}, "version 8 keeps the most access")

	require.NoError(t, store.Migrate(ctx))
	st, err := store.Load(ctx, "u1", t0, func(freemium.Account) freemium.Window { return freemium.Window{Start: t0, End: t0.Add(time.Hour)} })
	require.NoError(t, err)
	m := st.Account.Subscriptions
	require.Len(t, m.Subscriptions, 1)
	assert.Equal(t, sub("addon", freemium.StatusActive, ""), freemium.MirroredSubscription{Subscription: m.Subscriptions[0].Subscription, PaidPlan: m.Subscriptions[0].PaidPlan})
	assert.Equal(t, t0, m.Subscriptions[0].AsOf)
	assert.Equal(t, t0, m.PulledAsOf)
	assert.Equal(t, t0, m.SyncedAt)
}

func TestPostgresMigration9AnyTimeZone(t *testing.T) {
	ctx := context.Background()
	conn, schema := migratedTo(t, 8)
	_, err := conn.Exec(ctx, `INSERT INTO subscriptions (user_id, customer_id, sub_id, sub_customer_id, price_id, status,
		paid_plan, status_rank, as_of, synced_at, pulled)
		VALUES ('u1', 'cus_1', 'sub_1', 'cus_1', 'price_pro', 'active', 'pro', 3, '2026-11-15 10:00:00+00', '2026-11-15 10:00:00+00', true)`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "RESET search_path")
	require.NoError(t, err)

	cfg, err := pgxpool.ParseConfig(os.Getenv("FREEMIUM_TEST_DATABASE_URL"))
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["timezone"] = "Europe/Berlin" // the server's default on many installs
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	require.NoError(t, store.Migrate(ctx))

	var raw string
	require.NoError(t, pool.QueryRow(ctx, "SELECT subs::text FROM "+schema+".subscriptions").Scan(&raw))
	t.Logf("subs after migration 9: %s", raw)
	_, err = store.Load(ctx, "u1", time.Date(2026, 11, 15, 11, 0, 0, 0, time.UTC), func(freemium.Account) freemium.Window {
		return freemium.Window{Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	})
	assert.NoError(t, err, "the migrated user can be loaded")
}

func TestPostgresMigration10RecountsHolds(t *testing.T) {
	ctx := context.Background()
	conn, schema := migratedTo(t, 8)
	t0 := freemiumtest.T0
	month := freemium.Window{Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	for _, sql := range []string{
		`INSERT INTO accounts (user_id, anchor, held, held_until, pruned_at, latest_start, latest_used,
			last_hold, last_tokens, last_expires, last_start)
		 VALUES ('u1', $1, 900, $1::timestamptz + interval '60 seconds', $1::timestamptz + interval '90 seconds', $2, 0,
			'h2', 900, $1::timestamptz + interval '60 seconds', $2)`,
		`INSERT INTO reservations (id, user_id, period_start, first_report, expires_at, tokens) VALUES
			('h1', 'u1', $2, false, $1::timestamptz + interval '30 seconds', 10),
			('h2', 'u1', $2, false, $1::timestamptz + interval '60 seconds', 900)`,
		"RESET search_path",
	} {
		args := []any{t0, month.Start}
		if sql == "RESET search_path" {
			args = nil
		}
		_, err := conn.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	store, err := pgstore.New(testenv.Pool(t), &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	require.NoError(t, store.Migrate(ctx))
	require.NoError(t, store.Cancel(ctx, freemium.HoldRef{ID: "h1", UserID: "u1"}, t0))
	require.NoError(t, store.Commit(ctx, freemium.HoldRef{ID: "h2", UserID: "u1"}, 900, t0))
	st, err := store.Load(ctx, "u1", t0, func(freemium.Account) freemium.Window { return month })
	require.NoError(t, err)
	assert.Equal(t, int64(900), st.Used)
	assert.Equal(t, int64(0), st.Reserved, "the Commit gave the 900 back")
	r, err := store.Reserve(ctx, freemium.Hold{ID: "h3", UserID: "u1", Window: month, Tokens: 100, Limit: 1000,
		ExpiresAt: t0.Add(time.Minute)}, t0)
	require.NoError(t, err)
	assert.True(t, r.Admitted, "the last 100 fit")
}
