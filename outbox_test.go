package freemium_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/resendtest"
	"github.com/freemiumkit/freemium/internal/testenv"
)

// outboxEnv is a Gate on a store that sends through a resendnotify.Notifier to the
// Resend stand-in, with a settable clock.
type outboxEnv struct {
	t      *testing.T
	ctx    context.Context
	store  freemium.Store
	clock  *freemiumtest.Clock
	resend *resendtest.StandIn
	cfg    freemium.Config
	gate   *freemium.Gate
}

var outboxT0 = time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)

func newOutboxEnv(t *testing.T, store freemium.Store) *outboxEnv {
	e := &outboxEnv{t: t, ctx: context.Background(), store: store, clock: freemiumtest.NewClock(outboxT0), resend: resendtest.New(t)}
	rcfg := resendtest.Config(e.resend)
	rcfg.Recipient = func(_ context.Context, user string) (string, string, error) { return user + "@example.com", "", nil }
	e.cfg = freemium.Config{
		Store: store, Notifier: resendtest.Notifier(t, rcfg), Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler),
		Free:       freemium.Plan{Limit: 100, Period: freemium.CalendarMonth},
		UpgradeURL: "https://app.example/upgrade",
		Delivery:   freemium.DeliveryConfig{Backoff: 10 * time.Second, MaxBackoff: time.Minute, MaxAttempts: 5},
	}
	e.gate = e.newGate()
	return e
}

func (e *outboxEnv) newGate() *freemium.Gate {
	g, err := freemium.New(e.cfg)
	require.NoError(e.t, err)
	return g
}

// block takes user to the free limit and has a check blocked, which
// enqueues an upgrade prompt.
func (e *outboxEnv) block(user string) {
	e.t.Helper()
	require.NoError(e.t, e.gate.Record(e.ctx, user, 100, ""))
	d, err := e.gate.Check(e.ctx, user, 1)
	require.NoError(e.t, err)
	require.False(e.t, d.Allowed)
}

func (e *outboxEnv) dispatch(g *freemium.Gate) int {
	e.t.Helper()
	n, err := g.DispatchOnce(e.ctx)
	require.NoError(e.t, err)
	return n
}

func (e *outboxEnv) records() []freemium.NotificationRecord {
	e.t.Helper()
	rs, err := e.store.Notifications(e.ctx, outboxT0.Add(-time.Hour), outboxT0.AddDate(1, 0, 0))
	require.NoError(e.t, err)
	return rs
}

// A 500 is retried after the backoff, with the same idempotency key, and
// the email goes out once.
func TestOutboxRetriesA500(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		e := newOutboxEnv(t, store)
		e.block("u1")
		e.resend.FailNext(resendtest.Fault{Status: 500})
		assert.Equal(t, 0, e.dispatch(e.gate))
		rs := e.records()
		require.Len(t, rs, 1)
		assert.Equal(t, freemium.DeliveryPending, rs[0].State)
		assert.Equal(t, 1, rs[0].Attempts)
		assert.Contains(t, rs[0].LastError, "500")

		assert.Equal(t, 0, e.dispatch(e.gate), "not due before the backoff")
		assert.Equal(t, 1, e.resend.Requests())
		e.clock.Advance(10 * time.Second) // the first backoff is at most Backoff
		assert.Equal(t, 1, e.dispatch(e.gate))

		sent := e.resend.Delivered()
		require.Len(t, sent, 1)
		assert.Equal(t, rs[0].ID, sent[0].Header.Get("Idempotency-Key"))
		assert.Equal(t, []string{"u1@example.com"}, sent[0].Body.To)
		rs = e.records()
		assert.Equal(t, freemium.DeliverySent, rs[0].State)
		assert.Equal(t, sent[0].ID, rs[0].MessageID, "the provider's message ID is recorded")
		assert.Equal(t, outboxT0.Add(10*time.Second), rs[0].SentAt)

		e.clock.Advance(time.Hour)
		_, err := e.gate.Check(e.ctx, "u1", 1) // blocked again, already prompted
		require.NoError(t, err)
		assert.Equal(t, 0, e.dispatch(e.gate))
		assert.Len(t, e.records(), 1)
	})
}

// A 429 waits for its Retry-After, longer than the backoff (and within
// MaxBackoff).
func TestOutboxHonoursRetryAfter(t *testing.T) {
	e := newOutboxEnv(t, freemium.NewMemoryStore())
	e.block("u1")
	e.resend.FailNext(resendtest.Fault{Status: 429, RetryAfter: "50"})
	assert.Equal(t, 0, e.dispatch(e.gate))
	e.clock.Advance(49 * time.Second)
	assert.Equal(t, 0, e.dispatch(e.gate), "still inside Retry-After")
	assert.Equal(t, 1, e.resend.Requests())
	e.clock.Advance(time.Second)
	assert.Equal(t, 1, e.dispatch(e.gate))
	assert.Len(t, e.resend.Delivered(), 1)
}

// A 422 is permanent: failed at once, never retried.
func TestOutboxGivesUpOnAValidationError(t *testing.T) {
	e := newOutboxEnv(t, freemium.NewMemoryStore())
	e.block("u1")
	e.resend.FailNext(resendtest.Fault{Status: 422, Name: "validation_error"})
	assert.Equal(t, 0, e.dispatch(e.gate))
	e.clock.Advance(24 * time.Hour)
	assert.Equal(t, 0, e.dispatch(e.gate))
	assert.Equal(t, 1, e.resend.Requests())
	rs := e.records()
	require.Len(t, rs, 1)
	assert.Equal(t, freemium.DeliveryFailed, rs[0].State)
	assert.Equal(t, 1, rs[0].Attempts)
}

// Retries stop at MaxAttempts.
func TestOutboxStopsAtMaxAttempts(t *testing.T) {
	e := newOutboxEnv(t, freemium.NewMemoryStore())
	e.block("u1")
	for range 5 {
		e.resend.FailNext(resendtest.Fault{Status: 503})
		e.dispatch(e.gate)
		e.clock.Advance(time.Minute)
	}
	e.resend.FailNext(resendtest.Fault{Status: 503})
	assert.Equal(t, 0, e.dispatch(e.gate))
	assert.Equal(t, 5, e.resend.Requests())
	assert.Equal(t, freemium.DeliveryFailed, e.records()[0].State)
}

// The provider down for a while and back: every pending email is delivered,
// each exactly once.
func TestOutboxProviderDownThenBack(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		e := newOutboxEnv(t, store)
		const users = 30
		for i := range users {
			e.block(fmt.Sprint("u", i))
		}
		for range 3 { // three rounds of failures: 500s, dropped connections, 429s
			for i := range users {
				switch i % 3 {
				case 0:
					e.resend.FailNext(resendtest.Fault{Status: 500})
				case 1:
					e.resend.FailNext(resendtest.Fault{Drop: true})
				default:
					e.resend.FailNext(resendtest.Fault{Status: 429, RetryAfter: "5"})
				}
			}
			assert.Equal(t, 0, e.dispatch(e.gate))
			e.clock.Advance(time.Minute)
		}
		assert.Equal(t, users, e.dispatch(e.gate))
		keys := map[string]int{}
		for _, d := range e.resend.Delivered() {
			keys[d.Header.Get("Idempotency-Key")]++
		}
		assert.Len(t, keys, users, "every user's email went out")
		for k, n := range keys {
			assert.Equal(t, 1, n, "email %s delivered once", k)
		}
		e.clock.Advance(time.Hour)
		assert.Equal(t, 0, e.dispatch(e.gate), "nothing left")
	})
}

// A dispatcher that dies with notifications claimed leaves them to another
// Gate on the same Postgres once the claim's lease ends.
func TestOutboxNewGatePicksUpWhatTheOldLeft(t *testing.T) {
	e := newOutboxEnv(t, testenv.PostgresStore(t))
	for i := range 5 {
		e.block(fmt.Sprint("u", i))
	}
	claimed, err := e.store.ClaimNotifications(e.ctx, e.clock.Now(), 3, 10*time.Minute) // then "crashes"
	require.NoError(t, err)
	require.Len(t, claimed, 3)

	restarted := e.newGate()
	assert.Equal(t, 2, e.dispatch(restarted), "the unclaimed ones go at once")
	e.clock.Advance(10 * time.Minute)
	assert.Equal(t, 3, e.dispatch(restarted), "the claimed ones once the lease ends")
	assert.Len(t, e.resend.Delivered(), 5)
}

// signalNotifier is a recording Notifier that signals each send.
type signalNotifier struct {
	*freemiumtest.Notifier
	sent chan freemium.Notification
}

func (s signalNotifier) Notify(ctx context.Context, n freemium.Notification) error {
	err := s.Notifier.Notify(ctx, n)
	s.sent <- n
	return err
}

// Start delivers what a check enqueues without waiting for the poll; Stop
// ends it, and is harmless without Start and twice.
func TestOutboxStartStop(t *testing.T) {
	notifier := signalNotifier{Notifier: freemiumtest.NewNotifier(), sent: make(chan freemium.Notification, 10)}
	clock := freemiumtest.NewClock(outboxT0)
	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Notifier: notifier, Now: clock.Now,
		Free: freemium.Plan{Limit: 100}, Delivery: freemium.DeliveryConfig{PollInterval: time.Hour}})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, g.Stop(ctx), "Stop without Start")
	require.NoError(t, g.Start(ctx))
	assert.Error(t, g.Start(ctx), "Start twice")

	require.NoError(t, g.Record(ctx, "u1", 100, ""))
	_, err = g.Check(ctx, "u1", 1)
	require.NoError(t, err)
	select {
	case n := <-notifier.sent: // woken by the enqueue, not the hour-long poll
		assert.Equal(t, freemium.UpgradePrompt, n.Kind)
		assert.Equal(t, "u1", n.UserID)
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery")
	}
	require.NoError(t, g.Stop(ctx))
	require.NoError(t, g.Stop(ctx), "Stop twice")
	require.NoError(t, g.Start(ctx), "Start after Stop")
	require.NoError(t, g.Stop(ctx))
	ended, end := context.WithCancel(ctx)
	require.NoError(t, g.Start(ended))
	end()
	require.NoError(t, g.Start(ctx), "Start again once delivery ended with its context")
	require.NoError(t, g.Stop(ctx))

	_, err = freemium.New(freemium.Config{Store: freemium.NewMemoryStore()})
	require.NoError(t, err)
	noNotifier, _ := freemium.New(freemium.Config{Store: freemium.NewMemoryStore()})
	assert.ErrorContains(t, noNotifier.Start(ctx), "Config.Notifier is nil")
	_, err = noNotifier.DispatchOnce(ctx)
	assert.ErrorContains(t, err, "Config.Notifier is nil")
}

// The funnel from a scripted history: who hit a limit, who was prompted,
// who converted within the attribution window, how fast, to which plan.
func TestFunnel(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		ctx := context.Background()
		clock := freemiumtest.NewClock(outboxT0)
		subs := freemiumtest.NewSubscriptions()
		notifier := freemiumtest.NewNotifier()
		g, err := freemium.New(freemium.Config{Store: store, Subscriptions: subs, Notifier: notifier, Now: clock.Now,
			Logger: slog.New(slog.DiscardHandler),
			Free:   freemium.Plan{Limit: 100},
			Plans: []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000},
				{Name: "team", PriceIDs: []string{"price_team"}, Limit: 100}},
			TopUps: []freemium.TopUp{{PriceID: "price_pack", Tokens: 500}},
		})
		require.NoError(t, err)
		blocked := func(user string) {
			t.Helper()
			require.NoError(t, g.Record(ctx, user, 100, ""))
			d, err := g.Check(ctx, user, 1)
			require.NoError(t, err)
			require.False(t, d.Allowed, user)
		}
		convert := func(user, price string) {
			t.Helper()
			subs.Subscribe(user, price, clock.Now(), clock.Now().AddDate(0, 1, 0))
			require.NoError(t, g.Refresh(ctx, user))
		}
		// e is on team, and hits its paid limit: a limit hit, not a prompt.
		convert("e", "price_team")
		for _, u := range []string{"a", "b", "c", "d", "e"} {
			blocked(u)
		}
		clock.Advance(time.Minute)
		n, err := g.DispatchOnce(ctx)
		require.NoError(t, err)
		assert.Equal(t, 5, n, "four upgrade prompts and one limit reached")
		buy := func(user string) {
			t.Helper()
			require.NoError(t, g.ApplyTopUp(ctx, freemium.TopUpPayment{ID: "pi_" + user, PriceID: "price_pack", UserID: user}))
		}
		buy("z") // in the range, never prompted

		clock.Advance(2 * 24 * time.Hour)
		convert("b", "price_pro")
		buy("a") // after the range, within the window after a's prompt
		clock.Advance(3 * 24 * time.Hour)
		convert("d", "price_team")
		clock.Advance(35 * 24 * time.Hour) // 40 days after the prompt: outside the window
		convert("c", "price_pro")
		buy("c") // outside the window

		f, err := g.Funnel(ctx, outboxT0, outboxT0.Add(time.Hour))
		require.NoError(t, err)
		assert.Equal(t, 5, f.LimitHit)
		assert.Equal(t, 4, f.Prompted)
		assert.Equal(t, 2, f.Converted)
		assert.InDelta(t, 0.5, f.ConversionRate, 1e-9)
		assert.Equal(t, (2*24*time.Hour+5*24*time.Hour)/2, f.MedianTimeToConvert)
		assert.Equal(t, map[string]int{"pro": 1, "team": 1}, f.ByPlan)
		assert.Equal(t, 1, f.TopUps, "bought in the range")
		assert.Equal(t, int64(500), f.TopUpTokens)
		assert.Equal(t, 1, f.ToppedUp, "prompted users who bought within the window")

		empty, err := g.Funnel(ctx, outboxT0.Add(time.Hour), outboxT0.Add(2*time.Hour))
		require.NoError(t, err)
		assert.Zero(t, empty.LimitHit+empty.Prompted+empty.Converted+empty.TopUps)
		_, err = g.Funnel(ctx, outboxT0, outboxT0)
		assert.Error(t, err, "an empty range")
	})
}

// enqueueCounter counts the Enqueue calls that reach its Store.
type enqueueCounter struct {
	freemium.Store
	calls atomic.Int64
}

func (c *enqueueCounter) Enqueue(ctx context.Context, n freemium.Notification, start time.Time, deliver bool, now time.Time) (bool, error) {
	c.calls.Add(1)
	return c.Store.Enqueue(ctx, n, start, deliver, now)
}

// At most one notification of a kind per user and window, with 100 racing
// blocked checks through three Gates (three app instances); a repeated
// block costs no write.
func TestOutboxOncePerWindow(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		ctx := context.Background()
		counter := &enqueueCounter{Store: store}
		clock := freemiumtest.NewClock(outboxT0)
		subs := freemiumtest.NewSubscriptions()
		subs.Subscribe("payer", "price_pro", outboxT0.Add(-time.Hour), outboxT0.Add(-time.Hour).AddDate(0, 1, 0))
		gates := make([]*freemium.Gate, 3)
		for i := range gates {
			g, err := freemium.New(freemium.Config{Store: counter, Subscriptions: subs, Notifier: freemiumtest.NewNotifier(),
				Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
				Free:  freemium.Plan{Limit: 100, Period: freemium.CalendarMonth},
				Plans: []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 100, Period: freemium.BillingCycle}}})
			require.NoError(t, err)
			gates[i] = g
		}
		check := func(g *freemium.Gate, user string) freemium.Decision {
			d, err := g.Check(ctx, user, 1)
			require.NoError(t, err)
			return d
		}
		kinds := func() map[freemium.NotificationKind]int {
			rs, err := store.Notifications(ctx, outboxT0.Add(-time.Hour), outboxT0.AddDate(0, 2, 0))
			require.NoError(t, err)
			m := map[freemium.NotificationKind]int{}
			for _, r := range rs {
				m[r.Kind]++
			}
			return m
		}

		require.NoError(t, gates[0].Record(ctx, "u1", 85, ""))
		assert.True(t, check(gates[0], "u1").Warning)
		assert.True(t, check(gates[1], "u1").Allowed)
		assert.Equal(t, map[freemium.NotificationKind]int{freemium.UsageWarning: 1}, kinds())
		assert.Equal(t, int64(1), counter.calls.Load(), "the second warning check wrote nothing")

		require.NoError(t, gates[0].Record(ctx, "u1", 15, ""))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				d, err := gates[i%3].Check(ctx, "u1", 1)
				assert.NoError(t, err)
				assert.False(t, d.Allowed)
			}()
		}
		close(start)
		wg.Wait()
		assert.Equal(t, map[freemium.NotificationKind]int{freemium.UsageWarning: 1, freemium.UpgradePrompt: 1}, kinds())
		before := counter.calls.Load()
		for i := range 10 {
			check(gates[i%3], "u1")
			r, err := gates[i%3].Reserve(ctx, "u1", 1)
			require.NoError(t, err)
			assert.False(t, r.OK())
		}
		assert.Equal(t, before, counter.calls.Load(), "repeated blocked checks and reserves of a prompted user write nothing")

		require.NoError(t, gates[0].Record(ctx, "payer", 100, ""))
		assert.False(t, check(gates[2], "payer").Allowed)
		assert.False(t, check(gates[1], "payer").Allowed)
		assert.Equal(t, 1, kinds()[freemium.LimitReached], "a paid user's block")

		clock.Set(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)) // a new free window
		require.NoError(t, gates[0].Record(ctx, "u1", 100, ""))
		assert.False(t, check(gates[0], "u1").Allowed)
		assert.Equal(t, 2, kinds()[freemium.UpgradePrompt], "one prompt per window")
	})
}

// A dispatcher whose claim ran out, and whose notification another
// dispatcher then claimed and sent, cannot undo that with its late outcome.
func TestOutboxLateOutcomeDropped(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		e := newOutboxEnv(t, store)
		e.block("u1")
		slow, err := store.ClaimNotifications(e.ctx, e.clock.Now(), 10, time.Minute)
		require.NoError(t, err)
		require.Len(t, slow, 1)

		e.clock.Advance(2 * time.Minute) // the slow dispatcher's claim has run out
		assert.Equal(t, 1, e.dispatch(e.gate), "another dispatcher sends it")
		late := freemium.Outcome{State: freemium.DeliveryPending, Retry: e.clock.Now(), Error: "timeout", Claim: slow[0].ClaimedUntil}
		require.NoError(t, store.FinishNotification(e.ctx, slow[0].ID, late, e.clock.Now()))

		rs := e.records()
		require.Len(t, rs, 1)
		assert.Equal(t, freemium.DeliverySent, rs[0].State, "the late outcome changed nothing")
		assert.Equal(t, 1, rs[0].Attempts)
		e.clock.Advance(time.Hour)
		assert.Equal(t, 0, e.dispatch(e.gate), "and it is not sent again")
		assert.Len(t, e.resend.Delivered(), 1)
	})
}

// A Retry-After past MaxBackoff (25 hours: Resend's header is taken up to
// 1e9 seconds) waits MaxBackoff, so that the retry stays inside the
// provider's idempotency window.
func TestOutboxCapsRetryAfterAtMaxBackoff(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		e := newOutboxEnv(t, store)
		e.block("u1")
		e.resend.FailNext(resendtest.Fault{Status: 429, RetryAfter: "90000"})
		assert.Equal(t, 0, e.dispatch(e.gate))
		e.clock.Advance(time.Minute) // MaxBackoff
		assert.Equal(t, 1, e.dispatch(e.gate), "retried after MaxBackoff, not 25 hours")
		assert.Len(t, e.resend.Delivered(), 1)
	})
}

// No attempt goes out once Delivery.IdempotencyWindow (24 hours, Resend's)
// has passed since the notification was made, less SendTimeout: a send the
// provider accepted but whose reply came too late, then a day of 503s, ends
// as failed, logged, and the user has the one email. A notification whose
// first attempt was more than a day before a dispatcher's return is not
// tried again; one never tried goes, however late: nothing can repeat it.
func TestOutboxNoRetryAfterTheIdempotencyWindow(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		var logs strings.Builder
		e := newOutboxEnv(t, store)
		e.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		e.cfg.Delivery = freemium.DeliveryConfig{Backoff: time.Hour, MaxBackoff: time.Hour, MaxAttempts: 1000}
		e.gate = e.newGate()
		last := outboxT0.Add(24*time.Hour - 30*time.Second) // the window, less SendTimeout

		e.block("u1")
		e.resend.FailNext(resendtest.Fault{Drop: true, Deliver: true}) // accepted; the reply is lost
		for range 30 {
			before := e.resend.Requests()
			e.resend.FailNext(resendtest.Fault{Status: 503})
			e.dispatch(e.gate)
			if e.resend.Requests() > before {
				assert.False(t, e.clock.Now().After(last), "an attempt at %v, past the window", e.clock.Now())
			}
			e.clock.Advance(time.Hour)
		}
		assert.Len(t, e.resend.Delivered(), 1, "the user has one email")
		rs := e.records()
		require.Len(t, rs, 1)
		assert.Equal(t, freemium.DeliveryFailed, rs[0].State)
		assert.Contains(t, rs[0].LastError, "idempotency window")
		assert.Contains(t, logs.String(), "idempotency window")
	})
}

// A dispatcher back after more than a day sends what was never tried, and
// gives up on what was.
func TestOutboxAfterADispatcherOutage(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		e := newOutboxEnv(t, store)
		e.block("tried")
		e.resend.FailNext(resendtest.Fault{Drop: true, Deliver: true})
		assert.Equal(t, 0, e.dispatch(e.gate))
		e.block("untried")

		e.clock.Advance(25 * time.Hour)
		assert.Equal(t, 1, e.dispatch(e.gate))
		sent := e.resend.Delivered()
		require.Len(t, sent, 2, "the tried one once, the untried one now")
		assert.Equal(t, []string{"untried@example.com"}, sent[1].Body.To)
		assert.Equal(t, 2, e.resend.Requests(), "no second attempt at the tried one")
		states := map[string]freemium.DeliveryState{}
		for _, r := range e.records() {
			states[r.UserID] = r.State
		}
		assert.Equal(t, map[string]freemium.DeliveryState{"tried": freemium.DeliveryFailed, "untried": freemium.DeliverySent}, states)
	})
}
