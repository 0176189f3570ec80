package freemium_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

// configT0 is the instant the config tests start at: mid-November 2026, UTC.
var configT0 = time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)

// configEnv is a Gate on a new MemoryStore with a clock at configT0 and a
// fake subscription checker.
type configEnv struct {
	gate  *freemium.Gate
	clock *freemiumtest.Clock
	subs  *freemiumtest.Subscriptions
}

// newConfigEnv fills cfg's Store, Now and Subscriptions and calls New.
func newConfigEnv(tb testing.TB, cfg freemium.Config) configEnv {
	tb.Helper()
	e := configEnv{clock: freemiumtest.NewClock(configT0), subs: freemiumtest.NewSubscriptions()}
	cfg.Store, cfg.Now, cfg.Subscriptions = freemium.NewMemoryStore(), e.clock.Now, e.subs
	g, err := freemium.New(cfg)
	require.NoError(tb, err, "freemium.New")
	e.gate = g
	return e
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	store := freemium.NewMemoryStore()
	paid := func(name string, prices ...string) freemium.Plan {
		return freemium.Plan{Name: name, PriceIDs: prices, Limit: 100}
	}
	tests := []struct {
		name string
		cfg  freemium.Config
		want []string // substrings of the error: the field, and what clashes with it
	}{
		{"no Store", freemium.Config{}, []string{"Config.Store"}},
		{"WarnAt negative", freemium.Config{Store: store, WarnAt: -0.1}, []string{"Config.WarnAt"}},
		{"WarnAt NaN", freemium.Config{Store: store, WarnAt: math.NaN()}, []string{"Config.WarnAt", "NaN"}},
		{"WarnAt above 1", freemium.Config{Store: store, WarnAt: 1.01}, []string{"Config.WarnAt", "1.01"}},
		{"WarnAt +Inf", freemium.Config{Store: store, WarnAt: math.Inf(1)}, []string{"Config.WarnAt"}},
		{"ReservationTTL negative", freemium.Config{Store: store, ReservationTTL: -time.Second}, []string{"Config.ReservationTTL"}},
		{"UpgradeURL relative with a Notifier", freemium.Config{Store: store, Notifier: freemiumtest.NewNotifier(), UpgradeURL: "/pricing"},
			[]string{"Config.UpgradeURL", "/pricing", "absolute"}},
		{"SubscriptionMaxAge negative", freemium.Config{Store: store, SubscriptionMaxAge: -time.Second}, []string{"Config.SubscriptionMaxAge"}},
		{"PastDueGrace negative", freemium.Config{Store: store, PastDueGrace: -time.Hour}, []string{"Config.PastDueGrace"}},
		{"SubscriptionFallback unknown", freemium.Config{Store: store, SubscriptionFallback: 7}, []string{"Config.SubscriptionFallback"}},
		{"Delivery.MaxAttempts negative", freemium.Config{Store: store, Delivery: freemium.DeliveryConfig{MaxAttempts: -1}}, []string{"Config.Delivery.MaxAttempts"}},
		{"Delivery.MaxBackoff below Backoff", freemium.Config{Store: store, Delivery: freemium.DeliveryConfig{Backoff: time.Hour, MaxBackoff: time.Minute}},
			[]string{"Config.Delivery.MaxBackoff", "Backoff"}},
		{"Delivery.IdempotencyWindow negative", freemium.Config{Store: store, Delivery: freemium.DeliveryConfig{IdempotencyWindow: -time.Hour}},
			[]string{"Config.Delivery.IdempotencyWindow"}},
		{"Delivery.IdempotencyWindow within SendTimeout", freemium.Config{Store: store, Delivery: freemium.DeliveryConfig{IdempotencyWindow: time.Minute, SendTimeout: time.Minute}},
			[]string{"Config.Delivery.IdempotencyWindow", "SendTimeout"}},
		{"AttributionWindow negative", freemium.Config{Store: store, AttributionWindow: -time.Hour}, []string{"Config.AttributionWindow"}},
		{"Free with PriceIDs", freemium.Config{Store: store, Free: freemium.Plan{PriceIDs: []string{"price_x"}}},
			[]string{"Config.Free.PriceIDs"}},
		{"Free Limit below Unlimited", freemium.Config{Store: store, Free: freemium.Plan{Limit: -2}},
			[]string{"Config.Free.Limit", "-2"}},
		{"Free Every(500ms)", freemium.Config{Store: store, Free: freemium.Plan{Period: freemium.Every(500 * time.Millisecond)}},
			[]string{"Config.Free.Period", "Every(500ms)"}},
		{"paid plan without a Name", freemium.Config{Store: store, Plans: []freemium.Plan{paid("a", "p_a"), paid("", "p_b")}},
			[]string{"Config.Plans[1].Name"}},
		{"paid plan Limit below Unlimited", freemium.Config{Store: store, Plans: []freemium.Plan{{Name: "pro", Limit: -2}}},
			[]string{"Config.Plans[0].Limit", "-2"}},
		{"paid plan Limit above the maximum", freemium.Config{Store: store, Plans: []freemium.Plan{{Name: "pro", Limit: freemium.MaxTokens*1000 + 1}}},
			[]string{"Config.Plans[0].Limit"}},
		{"Every(0)", freemium.Config{Store: store, Plans: []freemium.Plan{{Name: "pro", Period: freemium.Every(0)}}},
			[]string{"Config.Plans[0].Period", "Every(0s)"}},
		{"Every(500ms)", freemium.Config{Store: store, Plans: []freemium.Plan{{Name: "pro", Period: freemium.Every(500 * time.Millisecond)}}},
			[]string{"Config.Plans[0].Period", "Every(500ms)"}},
		{"Every a nanosecond short of a second", freemium.Config{Store: store, Plans: []freemium.Plan{{Name: "pro", Period: freemium.Every(time.Second - time.Nanosecond)}}},
			[]string{"Config.Plans[0].Period"}},
		{"Every negative", freemium.Config{Store: store, Plans: []freemium.Plan{{Name: "pro", Period: freemium.Every(-time.Hour)}}},
			[]string{"Config.Plans[0].Period"}},
		{"empty price ID", freemium.Config{Store: store, Plans: []freemium.Plan{paid("a", "p_a"), paid("b", "p_b"), paid("c", "")}},
			[]string{"Config.Plans[2].PriceIDs[0]"}},
		{"duplicate plan names", freemium.Config{Store: store, Plans: []freemium.Plan{paid("pro", "p_1"), paid("pro", "p_2")}},
			[]string{"Config.Plans[1].Name", `"pro"`, "Config.Plans[0]"}},
		{"paid plan named like Free", freemium.Config{Store: store, Plans: []freemium.Plan{paid("free", "p_1")}},
			[]string{"Config.Plans[0].Name", `"free"`, "Config.Free"}},
		{"duplicate price ID across plans", freemium.Config{Store: store, Plans: []freemium.Plan{paid("a", "p_1"), paid("b", "p_2", "p_1")}},
			[]string{"Config.Plans[1].PriceIDs[1]", `"p_1"`, "Config.Plans[0]"}},
		{"two plans without PriceIDs", freemium.Config{Store: store, Plans: []freemium.Plan{paid("a"), paid("b", "p_b"), paid("c")}},
			[]string{"Config.Plans[0]", "Config.Plans[2]", "PriceIDs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := freemium.New(tt.cfg)
			require.Error(t, err)
			assert.Nil(t, g)
			assert.Contains(t, err.Error(), "freemium: ")
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestNewAcceptsEdgeConfigs holds the valid neighbours of the invalid
// configs above, so that validation cannot pass by rejecting too much.
func TestNewAcceptsEdgeConfigs(t *testing.T) {
	store := freemium.NewMemoryStore()
	tests := []struct {
		name string
		cfg  freemium.Config
	}{
		{"only Store", freemium.Config{Store: store}},
		{"WarnAt 1", freemium.Config{Store: store, WarnAt: 1}},
		{"WarnAt tiny", freemium.Config{Store: store, WarnAt: 1e-9}},
		{"ReservationTTL 0 (default)", freemium.Config{Store: store, ReservationTTL: 0}},
		{"Free Unlimited", freemium.Config{Store: store, Free: freemium.Plan{Limit: freemium.Unlimited}}},
		{"Limit at the maximum", freemium.Config{Store: store, Plans: []freemium.Plan{{Name: "pro", Limit: freemium.MaxTokens * 1000}}}},
		{"Every(1s)", freemium.Config{Store: store, Plans: []freemium.Plan{{Name: "pro", Period: freemium.Every(time.Second)}}}},
		{"Every a fraction of a µs over a second", freemium.Config{Store: store, Plans: []freemium.Plan{{Name: "pro", Period: freemium.Every(time.Second + 999)}}}},
		{"one plan without PriceIDs", freemium.Config{Store: store, Plans: []freemium.Plan{
			{Name: "pro", PriceIDs: []string{"p_1", "p_2"}}, {Name: "any"}}}},
		{"Free renamed, a paid plan named free", freemium.Config{Store: store, Free: freemium.Plan{Name: "starter"}, Plans: []freemium.Plan{{Name: "free"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := freemium.New(tt.cfg)
			require.NoError(t, err)
			assert.NotNil(t, g)
		})
	}
}

func TestNewMinimalConfig(t *testing.T) {
	ctx := context.Background()
	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore()})
	require.NoError(t, err)

	d, err := g.Check(ctx, "u1", 1)
	require.NoError(t, err)
	assert.False(t, d.Allowed)
	assert.Equal(t, freemium.ReasonSubscriptionRequired, d.Reason)
	assert.Equal(t, freemium.DefaultMessages.SubscriptionRequiredNoFreeReport, d.Message, "no free report was ever offered")
	assert.False(t, d.FirstReport)
	assert.Equal(t, "free", d.Plan)
	assert.Equal(t, int64(0), d.Limit)

	// The default clock is time.Now: the period is the current calendar month.
	before := time.Now().UTC()
	u, err := g.Usage(ctx, "u1")
	after := time.Now().UTC()
	require.NoError(t, err)
	monthOf := func(at time.Time) time.Time { return time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC) }
	assert.Contains(t, []time.Time{monthOf(before), monthOf(after)}, u.PeriodStart)
}

func TestNewDefaultWarnAt(t *testing.T) {
	tests := []struct {
		name    string
		warnAt  float64
		used    int64
		percent float64
		warning bool
	}{
		{"default, just below 80%", 0, 799, 79.9, false},
		{"default, exactly 80%", 0, 800, 80, true},
		{"default, above 80%", 0, 950, 95, true},
		{"default, nothing used", 0, 0, 0, false},
		{"custom 0.5, below", 0.5, 499, 49.9, false},
		{"custom 0.5, exactly", 0.5, 500, 50, true},
		{"custom 1, just below", 1, 999, 99.9, false},
		{"custom 1, exactly", 1, 1000, 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newConfigEnv(t, freemium.Config{WarnAt: tt.warnAt, Free: freemium.Plan{Limit: 1000}})
			require.NoError(t, e.gate.Record(ctx, "u1", tt.used, ""))
			u, err := e.gate.Usage(ctx, "u1")
			require.NoError(t, err)
			require.Equal(t, tt.used, u.Used)
			assert.InDelta(t, tt.percent, u.Percentage, 1e-9)
			assert.Equal(t, tt.warning, u.Warning)
		})
	}
}

func TestNewDefaultReservationTTL(t *testing.T) {
	ctx := context.Background()
	e := newConfigEnv(t, freemium.Config{Free: freemium.Plan{Limit: 100}})
	r, err := e.gate.Reserve(ctx, "u1", 40)
	require.NoError(t, err)
	require.True(t, r.OK())

	steps := []struct {
		at       time.Duration // after the Reserve
		reserved int64
	}{
		{0, 40},
		{15*time.Minute - time.Microsecond, 40},
		{15 * time.Minute, 0},
	}
	for _, s := range steps {
		e.clock.Set(configT0.Add(s.at))
		u, err := e.gate.Usage(ctx, "u1")
		require.NoError(t, err)
		assert.Equal(t, s.reserved, u.Reserved, "Reserved %v after the Reserve", s.at)
	}
}

func TestMessagesRender(t *testing.T) {
	const tmpl = "{plan}: {used} of {limit} ({percent}%) until {period_end}"
	custom := freemium.Messages{
		SubscriptionRequired:             "SR " + tmpl,
		SubscriptionRequiredNoFreeReport: "SN " + tmpl,
		LimitExceeded:                    "LE " + tmpl,
		LimitExceededNoReset:             "NR " + tmpl,
		FreeLimitExceeded:                "FL " + tmpl,
		EstimateExceedsRemaining:         "EE {estimate} > {remaining}: " + tmpl,
	}
	subStart := time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC)
	subEnd := time.Date(2026, 12, 10, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		plan     freemium.Plan // Free when it has no PriceIDs; else the user subscribes to it
		record   int64
		check    int64
		reason   freemium.Reason
		wantText string
	}{
		{"Free with nothing allowed", freemium.Plan{}, 0, 1,
			freemium.ReasonSubscriptionRequired, "SN free: 0 of 0 (100%) until December 1, 2026"},
		{"Free plan limit", freemium.Plan{Name: "starter", Limit: 1000}, 1000, 1,
			freemium.ReasonLimitExceeded, "FL starter: 1,000 of 1,000 (100%) until December 1, 2026"},
		{"Free plan estimate", freemium.Plan{Name: "starter", Limit: 10000}, 9000, 2500,
			freemium.ReasonEstimateExceedsRemaining, "EE 2,500 > 1,000: starter: 9,000 of 10,000 (90%) until December 1, 2026"},
		{"paid calendar month, percent rounded", freemium.Plan{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 7}, 8, 1,
			freemium.ReasonLimitExceeded, "LE pro: 8 of 7 (114%) until December 1, 2026"},
		{"paid billing cycle", freemium.Plan{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000, Period: freemium.BillingCycle}, 1000, 1,
			freemium.ReasonLimitExceeded, "LE pro: 1,000 of 1,000 (100%) until December 10, 2026"},
		{"paid lifetime", freemium.Plan{Name: "forever", PriceIDs: []string{"price_forever"}, Limit: 50, Period: freemium.Lifetime}, 60, 0,
			freemium.ReasonLimitExceeded, "NR forever: 60 of 50 (120%) until the period ends"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := freemium.Config{Messages: custom, UpgradeURL: "https://example.com/up"}
			if len(tt.plan.PriceIDs) == 0 {
				cfg.Free = tt.plan
			} else {
				cfg.Plans = []freemium.Plan{tt.plan}
			}
			e := newConfigEnv(t, cfg)
			if len(tt.plan.PriceIDs) > 0 {
				e.subs.Subscribe("u1", tt.plan.PriceIDs[0], subStart, subEnd)
			}
			if tt.record > 0 {
				require.NoError(t, e.gate.Record(ctx, "u1", tt.record, ""))
			}
			d, err := e.gate.Check(ctx, "u1", tt.check)
			require.NoError(t, err)
			require.False(t, d.Allowed)
			assert.Equal(t, tt.reason, d.Reason)
			assert.Equal(t, tt.wantText, d.Message)
			assert.Equal(t, "https://example.com/up", d.UpgradeURL)
		})
	}
}

func TestLifetimePaidPlanUsesNoResetMessage(t *testing.T) {
	ctx := context.Background()
	e := newConfigEnv(t, freemium.Config{Plans: []freemium.Plan{
		{Name: "lifetime", PriceIDs: []string{"price_life"}, Limit: 100, Period: freemium.Lifetime},
		{Name: "monthly", PriceIDs: []string{"price_month"}, Limit: 100, Period: freemium.CalendarMonth},
	}})
	start, end := configT0.Add(-time.Hour), configT0.AddDate(0, 1, 0)
	tests := []struct {
		user, price string
		want        string
	}{
		{"u_life", "price_life", "Usage limit reached (100% used). Upgrade your plan to continue."},
		{"u_month", "price_month", "Usage limit reached (100% used). Upgrade your plan or wait until December 1, 2026."},
	}
	for _, tt := range tests {
		t.Run(tt.price, func(t *testing.T) {
			e.subs.Subscribe(tt.user, tt.price, start, end)
			require.NoError(t, e.gate.Record(ctx, tt.user, 100, ""))
			d, err := e.gate.Check(ctx, tt.user, 1)
			require.NoError(t, err)
			require.False(t, d.Allowed)
			assert.Equal(t, freemium.ReasonLimitExceeded, d.Reason)
			assert.Equal(t, tt.want, d.Message)
		})
	}
}

func TestGateKeepsItsOwnPlans(t *testing.T) {
	ctx := context.Background()
	plans := []freemium.Plan{
		{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 100},
		{Name: "team", PriceIDs: []string{"price_team"}, Limit: 500},
	}
	e := newConfigEnv(t, freemium.Config{Plans: plans})
	e.subs.Subscribe("u1", "price_pro", configT0, configT0.AddDate(0, 1, 0))

	// The caller reuses its slice after New.
	plans[0].Name = "changed"
	plans[0].Limit = freemium.Unlimited
	plans[0].SoftLimit = true
	plans[0].PriceIDs[0] = "price_changed"
	plans[1] = freemium.Plan{Name: "pro2", PriceIDs: []string{"price_pro"}, Limit: freemium.Unlimited}

	u, err := e.gate.Usage(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, "pro", u.Plan)
	assert.Equal(t, int64(100), u.Limit)
	d, err := e.gate.Check(ctx, "u1", 101)
	require.NoError(t, err)
	assert.False(t, d.Allowed, "Check past the limit given to New")
	assert.False(t, d.Overage)
}

func TestDecisionErr(t *testing.T) {
	ctx := context.Background()
	e := newConfigEnv(t, freemium.Config{Free: freemium.Plan{Limit: 100}, UpgradeURL: "https://example.com/up"})
	tests := []struct {
		name    string
		tokens  int64
		allowed bool
	}{
		{"allowed at the limit", 100, true},
		{"blocked past the limit", 101, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.gate.Check(ctx, "u1", tt.tokens)
			require.NoError(t, err)
			require.Equal(t, tt.allowed, d.Allowed)
			if tt.allowed {
				assert.NoError(t, d.Err())
				assert.Empty(t, d.Message)
				assert.Empty(t, d.UpgradeURL)
				return
			}
			err = d.Err()
			require.Error(t, err)
			var blocked *freemium.BlockedError
			require.ErrorAs(t, err, &blocked)
			assert.Equal(t, d, blocked.Decision)
			assert.ErrorIs(t, err, freemium.ErrBlocked)
			assert.ErrorIs(t, fmt.Errorf("generate report: %w", err), freemium.ErrBlocked)
			assert.NotErrorIs(t, err, freemium.ErrInvalidTokens)
			assert.NotEmpty(t, d.Message)
			assert.Equal(t, d.Message, err.Error())
			assert.Equal(t, "https://example.com/up", d.UpgradeURL)
		})
	}
}

func TestSubscriptionCheckerErrorSurfaces(t *testing.T) {
	ctx := context.Background()
	errBilling := errors.New("billing provider unavailable")
	e := newConfigEnv(t, freemium.Config{Free: freemium.Plan{Limit: 100}})
	ops := []struct {
		name string
		call func(user string) error
	}{
		{"Check", func(user string) error { _, err := e.gate.Check(ctx, user, 1); return err }},
		{"Reserve", func(user string) error { _, err := e.gate.Reserve(ctx, user, 1); return err }},
		{"Usage", func(user string) error { _, err := e.gate.Usage(ctx, user); return err }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			// A user never mirrored: nothing to serve, so the error surfaces.
			e.subs.SetError(errBilling)
			err := op.call(op.name)
			require.Error(t, err)
			assert.ErrorIs(t, err, errBilling)
			assert.ErrorIs(t, err, freemium.ErrSubscriptionUnavailable)
			assert.NotErrorIs(t, err, freemium.ErrBlocked)

			e.subs.SetError(nil)
			assert.NoError(t, op.call(op.name), "after the checker recovers")
		})
	}
	// Record is for work already done: it records on what is known (here,
	// Free) rather than fail.
	e.subs.SetError(errBilling)
	require.NoError(t, e.gate.Record(ctx, "r1", 7, ""))
	e.subs.SetError(nil)
	u, err := e.gate.Usage(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, int64(7), u.Used, "the Record made while the checker failed counted")
}
