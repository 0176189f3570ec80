package freemiumtest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/freemiumkit/freemium"
)

// T0 is the instant the store tests start at: mid-month, mid-morning, UTC.
var T0 = time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)

// RunStoreTests runs the conformance suite for a freemium.Store: the
// behaviour of a Gate on the store, concurrency included. newStore must
// return a new, empty store each time it is called; subtests run in
// parallel.
func RunStoreTests(t *testing.T, newStore func(t *testing.T) freemium.Store) {
	for _, tc := range slices.Concat(usageTests, creditTests, mirrorTests, outboxTests) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore)
		})
	}
}

// A storeTest is one case of the suite; the cases are in files by
// concern: storetest_usage.go (usage, holds, windows), storetest_mirror.go
// (the subscription mirror, customers, conversions), storetest_credits.go
// (grants, adjustments, the ledger), storetest_outbox.go
// (notification marks and the outbox).
type storeTest struct {
	name string
	run  func(t *testing.T, newStore func(*testing.T) freemium.Store)
}

// Plans the suite uses.
var (
	freeFirstReport = freemium.Plan{Name: "free", FirstReportFree: true, Limit: 0, Period: freemium.Lifetime}
	pro             = freemium.Plan{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000, Period: freemium.BillingCycle}
)

// env is one test's gate on a new store.
type env struct {
	t     *testing.T
	ctx   context.Context
	store freemium.Store
	clock *Clock
	subs  *Subscriptions
	gate  *freemium.Gate
}

func newEnv(t *testing.T, newStore func(*testing.T) freemium.Store, cfg freemium.Config) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), store: newStore(t), clock: NewClock(T0), subs: NewSubscriptions()}
	cfg.Store, cfg.Now, cfg.Subscriptions = e.store, e.clock.Now, e.subs
	e.gate = e.newGate(cfg)
	return e
}

func (e *env) newGate(cfg freemium.Config) *freemium.Gate {
	e.t.Helper()
	g, err := freemium.New(cfg)
	if err != nil {
		e.t.Fatalf("freemium.New: %v", err)
	}
	return g
}

func (e *env) check(user string, tokens int64) freemium.Decision {
	e.t.Helper()
	d, err := e.gate.Check(e.ctx, user, tokens)
	if err != nil {
		e.t.Fatalf("Check(%q, %d): %v", user, tokens, err)
	}
	return d
}

func (e *env) reserve(user string, tokens int64) *freemium.Reservation {
	e.t.Helper()
	r, err := e.gate.Reserve(e.ctx, user, tokens)
	if err != nil {
		e.t.Fatalf("Reserve(%q, %d): %v", user, tokens, err)
	}
	return r
}

func (e *env) usage(user string) freemium.Usage {
	e.t.Helper()
	u, err := e.gate.Usage(e.ctx, user)
	if err != nil {
		e.t.Fatalf("Usage(%q): %v", user, err)
	}
	return u
}

func (e *env) record(user string, tokens int64, key string) {
	e.t.Helper()
	if err := e.gate.Record(e.ctx, user, tokens, key); err != nil {
		e.t.Fatalf("Record(%q, %d, %q): %v", user, tokens, key, err)
	}
}

// refresh mirrors the user's subscription from the fake checker now, as a
// host does on the page a checkout returns to.
func (e *env) refresh(user string) {
	e.t.Helper()
	if err := e.gate.Refresh(e.ctx, user); err != nil {
		e.t.Fatalf("Refresh(%q): %v", user, err)
	}
}

func (e *env) ok(err error, what string) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

func equal[V comparable](t *testing.T, what string, got, want V) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// parallel runs f(i) for i in [0, n) at once, released together.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	wg.Wait()
}

// hourWindow is the hour from T0, for tests that call a Store directly.
func hourWindow(freemium.Account) freemium.Window {
	return freemium.Window{Start: T0, End: T0.Add(time.Hour)}
}

// loadIn is the user's state in window w, at now.
func loadIn(t *testing.T, store freemium.Store, user string, w freemium.Window, now time.Time) freemium.State {
	t.Helper()
	st, err := store.Load(context.Background(), user, now, func(freemium.Account) freemium.Window { return w })
	if err != nil {
		t.Fatalf("Load(%q): %v", user, err)
	}
	return st
}

// statuses lists a mirror's subscriptions as "id=status ...", sorted by ID.
func statuses(m freemium.SubscriptionMirror) string {
	var out []string
	for _, s := range m.Subscriptions {
		out = append(out, s.ID+"="+string(s.Status))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// load is the user's state in the hour from T0, at T0.
func load(t *testing.T, store freemium.Store, user string) freemium.State {
	t.Helper()
	return loadIn(t, store, user, hourWindow(freemium.Account{}), T0)
}
