package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/configfile"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/stripetest"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/pgstore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// demoConfig is the demo's config file: the tests read the plans the demo
// runs on.
const demoConfig = "../../examples/reports/freemium.yaml"

// cli runs the command in process on one schema.
type cli struct {
	t      *testing.T
	schema string
	env    map[string]string
}

func newCLI(t *testing.T) *cli {
	url := testenv.Need(t, testenv.DatabaseURL, "the operator's command tests")
	schema := "cli_" + strings.ToLower(rand.Text()[:10])
	t.Cleanup(func() { testenv.Pool(t).Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	return &cli{t: t, schema: schema, env: map[string]string{"DATABASE_URL": url, "FREEMIUM_CONFIG": demoConfig}}
}

// run runs args and returns the exit code, stdout and stderr.
func (c *cli) run(args ...string) (int, string, string) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append(args, "--schema", c.schema), &out, &errOut, func(k string) string { return c.env[k] })
	return code, out.String(), errOut.String()
}

// ok runs args, requires exit code 0, and returns stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	code, out, errOut := c.run(args...)
	require.Equal(c.t, exitOK, code, "freemium %v: %s", args, errOut)
	return out
}

// json runs args with --json and decodes stdout into v.
func (c *cli) json(v any, args ...string) {
	c.t.Helper()
	require.NoError(c.t, json.Unmarshal([]byte(c.ok(append(args, "--json")...)), v))
}

// rows counts the rows of every table in the schema.
func (c *cli) rows() map[string]int {
	c.t.Helper()
	ctx := context.Background()
	pool := testenv.Pool(c.t)
	rows, _ := pool.Query(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", c.schema)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(c.t, err)
	counts := map[string]int{}
	for _, table := range tables {
		var n int
		require.NoError(c.t, pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{c.schema, table}.Sanitize()).Scan(&n))
		counts[table] = n
	}
	return counts
}

func TestMigrate(t *testing.T) {
	c := newCLI(t)
	out := c.ok("migrate", "status")
	assert.Contains(t, out, "001_init")
	assert.Contains(t, out, "pending")
	assert.Empty(t, c.rows(), "status wrote nothing: no schema")
	c.ok("migrate", "up")
	var st []pgstore.MigrationState
	c.json(&st, "migrate", "status")
	require.Len(t, st, 2)
	assert.False(t, st[1].AppliedAt.IsZero())
	c.ok("migrate", "up") // idempotent
}

// usage prints the plan and usage a Gate decides, from the mirror,
// without a checker and without writing; funnel and outbox read what the
// Gate recorded; retry gives a failed notification another try.
func TestUsageFunnelOutbox(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	c.ok("migrate", "up")

	// The host's Gate: its checker, and a notifier that refuses.
	cfg, err := configfile.Load(demoConfig)
	require.NoError(t, err)
	store, err := pgstore.New(testenv.Pool(t), &pgstore.Config{Schema: c.schema})
	require.NoError(t, err)
	subs, notifier := freemiumtest.NewSubscriptions(), freemiumtest.NewNotifier()
	notifier.SetError(&freemium.NotifyError{Permanent: true, Err: errors.New("domain not verified")})
	cfg.Store, cfg.Subscriptions, cfg.Notifier, cfg.UpgradeURL = store, subs, notifier, "https://example.com/up"
	g, err := freemium.New(cfg)
	require.NoError(t, err)
	now := time.Now()
	subs.Subscribe("payer", "price_pro", now.Add(-time.Hour), now.AddDate(0, 1, 0))
	require.NoError(t, g.Refresh(ctx, "payer"))
	require.NoError(t, g.Record(ctx, "payer", 16_500, "job-1"))
	r, err := g.Reserve(ctx, "free1", 2000)
	require.NoError(t, err)
	require.NoError(t, r.Commit(ctx, 1750))
	d, err := g.Check(ctx, "free1", 2000)
	require.NoError(t, err)
	require.False(t, d.Allowed)
	_, err = g.DispatchOnce(ctx) // the upgrade prompt fails for good
	require.NoError(t, err)

	before := c.rows()
	out := c.ok("usage", "ghost")
	assert.Contains(t, out, "plan          free")
	assert.Contains(t, out, "first report  available")
	var ghost usageView
	c.json(&ghost, "usage", "ghost")
	assert.Equal(t, "available", ghost.FirstReport)
	assert.Zero(t, ghost.Usage.Percentage)

	var payer usageView
	c.json(&payer, "usage", "payer")
	want, err := g.Usage(ctx, "payer")
	require.NoError(t, err)
	assert.Equal(t, "pro", payer.Usage.Plan, "the paid plan, from the mirror, with no checker here")
	assert.Equal(t, want, payer.Usage, "what the host's Gate says")
	require.Len(t, payer.Mirror.Subscriptions, 1)
	assert.Equal(t, "active", payer.Mirror.Subscriptions[0].Status)
	out = c.ok("usage", "payer")
	assert.Contains(t, out, "16,500 of 20,000 tokens (82.5%), warned")
	assert.Contains(t, out, "first report  none")
	assert.Equal(t, before, c.rows(), "usage wrote nothing")

	var f freemium.Funnel
	c.json(&f, "funnel", "--since", "1d")
	assert.Equal(t, 1, f.LimitHit)
	assert.Zero(t, f.Prompted, "the prompt failed")

	var box outboxView
	c.json(&box, "outbox")
	assert.Equal(t, 1, box.Failed)
	require.Len(t, box.Notifications, 1)
	failed := box.Notifications[0]
	assert.Equal(t, "free1", failed.UserID)
	assert.Contains(t, failed.LastError, "domain not verified")
	assert.Contains(t, c.ok("outbox", "failed"), "domain not verified")

	c.ok("outbox", "retry", failed.ID)
	code, _, errOut := c.run("outbox", "retry", failed.ID)
	assert.Equal(t, exitFailed, code, "no longer failed: %s", errOut)
	assert.Contains(t, errOut, "not failed")
	code, _, _ = c.run("outbox", "retry", "ntf_unknown")
	assert.Equal(t, exitFailed, code)
	c.json(&box, "outbox", "pending")
	require.Len(t, box.Notifications, 1)
	assert.Equal(t, 0, box.Notifications[0].Attempts)

	notifier.SetError(nil)
	sent, err := g.DispatchOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, sent, "the retried prompt goes")

	// A pack bought and partly spent: usage shows the credits, ledger where
	// they went, funnel the top-up.
	require.NoError(t, g.ApplyTopUp(ctx, freemium.TopUpPayment{ID: "pi_1", PriceID: "price_tokens_10k", UserID: "free1"}))
	r, err = g.Reserve(ctx, "free1", 2000)
	require.NoError(t, err)
	require.True(t, r.OK(), "the pack pays")
	require.NoError(t, r.Commit(ctx, 1750))
	before = c.rows()
	assert.Contains(t, c.ok("usage", "free1"), "credits       8,250 tokens")
	out = c.ok("ledger", "free1")
	assert.Contains(t, out, "grant  10,000  topup:pi_1  top-up price_tokens_10k")
	assert.Contains(t, out, "spend  -1,750  topup:pi_1  usage past the plan's allowance")
	var entries []ledgerView
	c.json(&entries, "ledger", "free1", "--since", "1d")
	require.Len(t, entries, 2)
	assert.Equal(t, int64(10_000-1_750), entries[0].Tokens+entries[1].Tokens)
	c.json(&f, "funnel", "--since", "1d")
	assert.Equal(t, 1, f.TopUps)
	assert.Equal(t, int64(10_000), f.TopUpTokens)
	assert.Equal(t, before, c.rows(), "usage, ledger and funnel wrote nothing")
}

func TestExitCodes(t *testing.T) {
	c := newCLI(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, exitUsage},
		{[]string{"frobnicate"}, exitUsage},
		{[]string{"usage"}, exitUsage},
		{[]string{"usage", "a", "b"}, exitUsage},
		{[]string{"migrate", "sideways"}, exitUsage},
		{[]string{"funnel", "--since", "soon"}, exitUsage},
		{[]string{"outbox", "--limit", "0"}, exitUsage},
		{[]string{"ledger"}, exitUsage},
		{[]string{"ledger", "ann", "--since", "later"}, exitUsage},
		{[]string{"usage", "ann", "--bogus"}, exitUsage},
		{[]string{"refresh", "ann"}, exitUsage}, // no STRIPE_SECRET_KEY
		{[]string{"usage", "ann", "--config", "missing.yaml"}, exitUsage},
		{[]string{"help"}, exitOK},
		{[]string{"usage", "ann", "--database-url", "postgres://freemium@127.0.0.1:1/none?connect_timeout=2"}, exitFailed},
	} {
		code, _, errOut := c.run(tc.args...)
		assert.Equal(t, tc.code, code, "freemium %v: %s", tc.args, errOut)
	}
	delete(c.env, "DATABASE_URL")
	code, _, errOut := c.run("usage", "ann")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "DATABASE_URL")
}

// refresh mirrors the user's subscription from Stripe (a stand-in that
// behaves like its API), through the customer linked in the Store, and
// prints the usage on it; usage without Stripe then reads that mirror.
func TestRefreshWithStripe(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	c.ok("migrate", "up")
	stripe := stripetest.New(t)
	now := time.Now()
	stripe.SetSubs("cus_carol", stripetest.Sub("sub_carol", "cus_carol", "active", now.Add(-time.Hour), now.AddDate(0, 1, 0), "price_pro"))
	store, err := pgstore.New(testenv.Pool(t), &pgstore.Config{Schema: c.schema})
	require.NoError(t, err)
	g, err := freemium.New(freemium.Config{Store: store})
	require.NoError(t, err)
	require.NoError(t, g.LinkCustomer(ctx, "carol", "cus_carol"))

	c.env["STRIPE_SECRET_KEY"], c.env["STRIPE_BACKEND_URL"] = stripetest.Key, stripe.URL()
	var v usageView
	c.json(&v, "refresh", "carol")
	assert.Equal(t, "pro", v.Usage.Plan)
	assert.Equal(t, "cus_carol", v.CustomerID)
	require.Len(t, v.Mirror.Subscriptions, 1)

	delete(c.env, "STRIPE_SECRET_KEY")
	c.json(&v, "usage", "carol")
	assert.Equal(t, "pro", v.Usage.Plan, "from the mirror refresh wrote")
	assert.Empty(t, v.Notes)
}
