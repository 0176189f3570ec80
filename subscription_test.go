package freemium_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/stripetest"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/stripesub"
)

// mirrorEnv is a Gate on a Stripe stand-in, through stripesub.Checker, with
// a settable clock.
type mirrorEnv struct {
	t      *testing.T
	ctx    context.Context
	stripe *stripetest.StandIn
	clock  *freemiumtest.Clock
	store  freemium.Store
	gate   *freemium.Gate
}

var mirrorT0 = time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)

func newMirrorEnv(t *testing.T, cfg freemium.Config) *mirrorEnv {
	e := &mirrorEnv{t: t, ctx: context.Background(), stripe: stripetest.New(t), clock: freemiumtest.NewClock(mirrorT0)}
	if cfg.Store == nil {
		cfg.Store = freemium.NewMemoryStore()
	}
	e.store = cfg.Store
	cfg.Subscriptions = stripetest.Checker(t, stripesub.Config{APIKey: stripetest.Key, BackendURL: e.stripe.URL(), SearchCustomers: true})
	cfg.Now, cfg.Logger = e.clock.Now, slog.New(slog.DiscardHandler)
	cfg.Free = freemium.Plan{Limit: 100, Period: freemium.CalendarMonth}
	cfg.Plans = []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 10_000, Period: freemium.BillingCycle}}
	g, err := freemium.New(cfg)
	require.NoError(t, err)
	e.gate = g
	return e
}

func (e *mirrorEnv) subscribe(user string) {
	cus := "cus_" + user
	e.stripe.SetCustomer(user, cus)
	e.stripe.SetSubs(cus, stripetest.Sub("sub_"+user, cus, "active", mirrorT0.Add(-time.Hour), mirrorT0.Add(-time.Hour).AddDate(0, 1, 0), "price_pro"))
}

func (e *mirrorEnv) check(user string, tokens int64) freemium.Decision {
	e.t.Helper()
	d, err := e.gate.Check(e.ctx, user, tokens)
	require.NoError(e.t, err)
	return d
}

// stripeCalls counts the requests that found customers and listed subscriptions.
func (e *mirrorEnv) stripeCalls() int {
	return e.stripe.Count("/v1/subscriptions") + e.stripe.Count("/v1/customers/search")
}

// With a fresh mirror, checks do not ask Stripe: 1,000 checks over 100
// users make no call once each user is mirrored.
func TestMirrorFreshChecksMakeNoCalls(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		e := newMirrorEnv(t, freemium.Config{Store: store})
		for i := range 100 {
			if i%2 == 0 {
				e.subscribe(fmt.Sprint("u", i))
			}
			e.check(fmt.Sprint("u", i), 1) // mirrors the user
		}
		mirrored := e.stripeCalls()
		thousandChecks := func() {
			t.Helper()
			for i := range 1000 {
				d := e.check(fmt.Sprint("u", i%100), 500)
				assert.Equal(t, i%2 == 0, d.Allowed, "user u%d: subscribers have room, free users not", i%100)
			}
		}
		e.clock.Advance(30 * time.Second) // a blocked check trusts a mirror younger than a minute
		thousandChecks()
		assert.Equal(t, mirrored, e.stripeCalls(), "1,000 checks with a fresh mirror make no Stripe call")

		e.clock.Advance(6 * time.Minute) // past SubscriptionMaxAge: one refresh per user, then none
		thousandChecks()
		assert.Equal(t, 2*mirrored, e.stripeCalls())
	})
}

// Concurrent checks of a user nobody has mirrored share one Stripe call.
func TestMirrorConcurrentChecksShareOneCall(t *testing.T) {
	e := newMirrorEnv(t, freemium.Config{})
	e.subscribe("u1")
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d, err := e.gate.Check(e.ctx, "u1", 5000)
			assert.NoError(t, err)
			assert.True(t, d.Allowed)
			assert.Equal(t, "pro", d.Plan)
		}()
	}
	close(start)
	wg.Wait()
	assert.Equal(t, 1, e.stripe.Count("/v1/subscriptions"), "100 parallel checks, one Stripe call")
}

// A check about to block refreshes a mirror older than a minute, so a user
// who just paid gets through; a younger mirror is trusted.
func TestMirrorRefreshesBeforeBlocking(t *testing.T) {
	e := newMirrorEnv(t, freemium.Config{SubscriptionMaxAge: 24 * time.Hour})
	assert.False(t, e.check("u1", 500).Allowed, "a free user over the free limit")
	calls := e.stripeCalls()
	e.subscribe("u1") // pays; no webhook wired

	e.clock.Advance(30 * time.Second)
	assert.False(t, e.check("u1", 500).Allowed, "a mirror half a minute old is trusted")
	assert.Equal(t, calls, e.stripeCalls())

	e.clock.Advance(31 * time.Second)
	d := e.check("u1", 500)
	assert.True(t, d.Allowed, "past a minute, the block is checked with Stripe")
	assert.Equal(t, "pro", d.Plan)
	r, err := e.gate.Reserve(e.ctx, "u1", 500)
	require.NoError(t, err)
	assert.True(t, r.OK())

	conv, err := e.store.Conversions(e.ctx, mirrorT0, mirrorT0.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, conv, 1)
	assert.Equal(t, freemium.Conversion{UserID: "u1", Plan: "pro", At: mirrorT0.Add(61 * time.Second)}, conv[0])
}

// Refresh pulls at once, whatever the mirror's age: the checkout success page.
func TestMirrorRefresh(t *testing.T) {
	e := newMirrorEnv(t, freemium.Config{SubscriptionMaxAge: 24 * time.Hour})
	assert.Equal(t, "free", e.check("u1", 1).Plan)
	e.subscribe("u1")
	assert.Equal(t, "free", e.check("u1", 1).Plan, "allowed checks trust the mirror")
	require.NoError(t, e.gate.Refresh(e.ctx, "u1"))
	assert.Equal(t, "pro", e.check("u1", 1).Plan)
}

// When Stripe fails, the last known state serves for SubscriptionGrace;
// then the fallback decides.
func TestMirrorStripeDown(t *testing.T) {
	for _, fallback := range []freemium.Fallback{freemium.FallbackError, freemium.FallbackFree} {
		t.Run(fmt.Sprint("fallback", fallback), func(t *testing.T) {
			notifier := freemiumtest.NewNotifier()
			e := newMirrorEnv(t, freemium.Config{SubscriptionFallback: fallback, Notifier: notifier})
			e.subscribe("u1")
			assert.Equal(t, "pro", e.check("u1", 1).Plan)
			require.NoError(t, e.gate.Record(e.ctx, "u1", 10_000, ""))

			e.stripe.Fail(500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500)
			e.clock.Advance(64 * time.Minute) // stale (5m), inside the hour of grace after it
			calls := e.stripeCalls()
			d := e.check("u1", 5_000)
			assert.Equal(t, "pro", d.Plan, "the last known state serves")
			assert.False(t, d.Allowed, "over the pro limit")
			assert.Equal(t, calls+2, e.stripeCalls(), "one refresh (with its one retry) for a blocked check, not two")

			e.clock.Advance(2 * time.Minute) // past the grace
			d, err := e.gate.Check(e.ctx, "u1", 200)
			if fallback == freemium.FallbackError {
				assert.ErrorIs(t, err, freemium.ErrSubscriptionUnavailable)
			} else {
				require.NoError(t, err)
				assert.Equal(t, "free", d.Plan)
				assert.False(t, d.Allowed, "over the free limit")
			}
			require.NoError(t, e.gate.Record(e.ctx, "u1", 10, ""), "work done is recorded, Stripe or not")

			// A user never mirrored has nothing to serve.
			_, err = e.gate.Check(e.ctx, "u2", 1)
			if fallback == freemium.FallbackError {
				assert.ErrorIs(t, err, freemium.ErrSubscriptionUnavailable)
			} else {
				assert.NoError(t, err)
			}

			// Only the pro block was a real one: no upgrade prompt for a
			// subscriber put on Free because Stripe is down.
			rs, err := e.store.Notifications(e.ctx, mirrorT0, mirrorT0.Add(24*time.Hour))
			require.NoError(t, err)
			var kinds []freemium.NotificationKind
			for _, r := range rs {
				kinds = append(kinds, r.Kind)
			}
			assert.Equal(t, []freemium.NotificationKind{freemium.LimitReached}, kinds)
		})
	}
}

// A Stripe that does not answer holds a check up to SubscriptionTimeout,
// not longer, and the checks waiting on it share that wait.
func TestMirrorStripeHangs(t *testing.T) {
	e := newMirrorEnv(t, freemium.Config{SubscriptionTimeout: 200 * time.Millisecond})
	e.stripe.HangAll()
	began := time.Now()
	_, err := e.gate.Check(e.ctx, "u1", 1)
	assert.ErrorIs(t, err, freemium.ErrSubscriptionUnavailable)
	assert.Less(t, time.Since(began), 5*time.Second, "bounded by SubscriptionTimeout")

	// A caller's own deadline ends its wait; the shared call goes on.
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Millisecond)
	defer cancel()
	_, err = e.gate.Check(ctx, "u2", 1)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// past_due keeps the plan until the period ends, plus PastDueGrace; in the
// grace the user is still in that period, with what is left of its
// allowance, not in a new one.
func TestMirrorPastDue(t *testing.T) {
	for _, grace := range []time.Duration{0, 72 * time.Hour} {
		t.Run(grace.String(), func(t *testing.T) {
			e := newMirrorEnv(t, freemium.Config{PastDueGrace: grace})
			end := mirrorT0.Add(24 * time.Hour)
			e.stripe.SetCustomer("u1", "cus_1")
			e.stripe.SetSubs("cus_1", stripetest.Sub("sub_1", "cus_1", "past_due", end.AddDate(0, -1, 0), end, "price_pro"))
			assert.Equal(t, "pro", e.check("u1", 1).Plan, "past_due inside the period")
			require.NoError(t, e.gate.Record(e.ctx, "u1", 10_000, ""))
			e.clock.Set(end.Add(grace - time.Second))
			d := e.check("u1", 1)
			assert.Equal(t, "pro", d.Plan, "until the grace ends")
			if grace > 0 {
				assert.False(t, d.Allowed, "no new allowance in the grace: %+v", d)
				assert.Equal(t, end, d.PeriodEnd)
			}
			e.clock.Set(end.Add(grace))
			assert.Equal(t, "free", e.check("u1", 1).Plan, "then Free")
		})
	}
}

// A completed checkout counts at once, without a webhook: the session names
// the user and the new customer. Another user's session changes nothing.
func TestCompleteCheckout(t *testing.T) {
	e := newMirrorEnv(t, freemium.Config{SubscriptionMaxAge: 24 * time.Hour})
	assert.False(t, e.check("u1", 500).Allowed)
	link, err := e.gate.CheckoutURL(e.ctx, "u1", "price_pro", freemium.CheckoutParams{SuccessURL: "https://app.example/done?s={CHECKOUT_SESSION_ID}"})
	require.NoError(t, err)
	require.NotEmpty(t, link)
	err = e.gate.CompleteCheckout(e.ctx, "u1", "cs_test_1")
	assert.ErrorContains(t, err, "not complete", "the user has not paid yet")

	// The user pays: Stripe makes a customer with the subscription. No
	// webhook arrives, and a customer search would not find it.
	e.stripe.Complete("cs_test_1", "cus_new")
	e.stripe.SetSubs("cus_new", stripetest.Sub("sub_new", "cus_new", "active", mirrorT0, mirrorT0.AddDate(0, 1, 0), "price_pro"))
	assert.ErrorContains(t, e.gate.CompleteCheckout(e.ctx, "u2", "cs_test_1"), "not u2's")
	user, err := e.store.CustomerUser(e.ctx, "cus_new")
	require.NoError(t, err)
	assert.Empty(t, user, "nothing linked for the wrong user")

	require.NoError(t, e.gate.CompleteCheckout(e.ctx, "u1", "cs_test_1"))
	d := e.check("u1", 500)
	assert.True(t, d.Allowed)
	assert.Equal(t, "pro", d.Plan)
	assert.Error(t, e.gate.CompleteCheckout(e.ctx, "u1", "cs_test_99"), "an unknown session")
}

// A price no plan lists is logged when it leaves a subscriber on Free, once
// per price; an add-on beside a plan's subscription is not.
func TestUnplacedPriceWarning(t *testing.T) {
	var logs bytes.Buffer
	subs := freemiumtest.NewSubscriptions()
	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Subscriptions: subs,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Free: freemium.Plan{Limit: 10},
		Plans: []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000}}})
	require.NoError(t, err)
	ctx := context.Background()
	addon := freemium.Subscription{ID: "sub_addon", Status: freemium.StatusActive, PriceIDs: []string{"price_addon"}}
	pro := freemium.Subscription{ID: "sub_pro", Status: freemium.StatusActive, PriceIDs: []string{"price_pro"}}
	subs.Set("u1", addon, pro)
	require.NoError(t, g.Refresh(ctx, "u1"))
	u, err := g.Usage(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, "pro", u.Plan)
	assert.Empty(t, logs.String(), "an add-on beside the plan's subscription is not news")

	for _, user := range []string{"u2", "u3"} {
		subs.Set(user, addon)
		require.NoError(t, g.Refresh(ctx, user))
		u, err = g.Usage(ctx, user)
		require.NoError(t, err)
		assert.Equal(t, "free", u.Plan)
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "price_id=price_addon"), "once per price: %s", &logs)
}

// A checker that breaks the contract (a status that is not Stripe's, a
// BillingCycle subscription without period bounds) is logged, once per
// subscription, rather than silently mapped.
func TestCheckerContractWarnings(t *testing.T) {
	var logs bytes.Buffer
	subs := freemiumtest.NewSubscriptions()
	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Subscriptions: subs,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Plans:  []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000, Period: freemium.BillingCycle}}})
	require.NoError(t, err)
	ctx := context.Background()
	subs.Set("shouty", freemium.Subscription{ID: "sub_shouty", Status: "ACTIVE", PriceIDs: []string{"price_pro"}})
	subs.Set("unbounded", freemium.Subscription{ID: "sub_unbounded", Status: freemium.StatusActive, PriceIDs: []string{"price_pro"}})
	for range 3 {
		for _, user := range []string{"shouty", "unbounded"} {
			_, err := g.Check(ctx, user, 1)
			require.NoError(t, err)
		}
	}
	u, err := g.Usage(ctx, "shouty")
	require.NoError(t, err)
	assert.Equal(t, "free", u.Plan, "an unknown status gives no access")
	u, err = g.Usage(ctx, "unbounded")
	require.NoError(t, err)
	assert.Equal(t, "pro", u.Plan)
	assert.Equal(t, 1, strings.Count(logs.String(), "status=ACTIVE"), "once per subscription: %s", &logs)
	assert.Equal(t, 1, strings.Count(logs.String(), "subscription_id=sub_unbounded plan=pro"), "once per subscription: %s", &logs)
}
