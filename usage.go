package freemium

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Usage is a user's consumption of their plan in the current period.
type Usage struct {
	Plan     string `json:"plan"`
	Used     int64  `json:"used"`     // tokens recorded in the period
	Reserved int64  `json:"reserved"` // tokens of live holds
	Limit    int64  `json:"limit"`    // the plan's limit, or Unlimited
	// Remaining is what a request may still take: Limit-Used-Reserved,
	// at least 0, plus the credits (on a hard limit: a soft-limited plan
	// does not spend them); Unlimited when uncapped.
	Remaining int64 `json:"remaining"`
	// Credits is the tokens left in the user's live grants (Gate.Grant, a
	// top-up), spent once the allowance is used up.
	Credits int64 `json:"credits"`
	// CreditsExpireAt is when the first of those grants expires: what is
	// left of it then stops counting. Zero when none expires.
	CreditsExpireAt time.Time `json:"credits_expire_at,omitzero"`
	// Percentage is Used/Limit*100, rounded to two decimals. It may pass
	// 100 when actual usage outran estimates. Unlimited reads as 0, and so
	// does a zero limit while the free first report is available; a zero
	// limit with nothing left reads as 100.
	Percentage float64 `json:"percentage"`
	// Warning is set when Used/Limit has reached Config.WarnAt: never
	// while the free first report is available on a zero limit.
	Warning bool `json:"warning"`
	// Overage is set on a soft-limited plan past its limit.
	Overage         bool `json:"overage"`
	FirstReportUsed bool `json:"first_report_used"`
	// FirstReportAvailable is set when the plan gives a free first report
	// and the user's is neither used nor held by a reservation in flight.
	FirstReportAvailable bool `json:"first_report_available"`
	// PeriodStart and PeriodEnd bound the current window; both are zero for
	// Lifetime, which never resets.
	PeriodStart time.Time `json:"period_start,omitzero"`
	PeriodEnd   time.Time `json:"period_end,omitzero"`
}

// usage is the Usage of a user on plan p in state s.
func (g *Gate) usage(p *Plan, s State) Usage {
	u := Usage{
		Plan:                 p.Name,
		Used:                 s.Used,
		Reserved:             s.Reserved,
		Limit:                p.Limit,
		Remaining:            Unlimited,
		Credits:              s.Credits,
		CreditsExpireAt:      s.CreditsExpire,
		FirstReportUsed:      s.FirstReportUsed,
		FirstReportAvailable: p.FirstReportFree && !s.FirstReportUsed && !s.FirstReportHeld,
	}
	if p.Period != Lifetime {
		u.PeriodStart, u.PeriodEnd = s.PeriodStart, s.PeriodEnd
	}
	if p.Limit == Unlimited {
		return u
	}
	g.measure(&u, !p.SoftLimit)
	if p.Limit == 0 && !u.FirstReportAvailable && !s.FirstReportHeld && s.Credits == 0 {
		u.Percentage, u.Warning = 100, true // nothing was ever allowed, or it is spent
	}
	u.Overage = p.SoftLimit && addSat(s.Used, s.Reserved) > p.Limit
	return u
}

// measure sets u's Remaining, and for a positive limit its Percentage
// and Warning, from its Used, Reserved, Limit (not Unlimited) and, when
// the plan spends them (spends: a hard limit), Credits.
func (g *Gate) measure(u *Usage, spends bool) {
	credits := u.Credits
	if !spends {
		credits = 0
	}
	u.Remaining = max(0, room(u.Limit, u.Used, credits)-addSat(u.Used, u.Reserved))
	if u.Limit > 0 {
		fraction := float64(u.Used) / float64(u.Limit)
		u.Percentage = math.Round(fraction*10000) / 100
		u.Warning = fraction >= g.cfg.WarnAt
	}
}

// Usage returns the user's current usage, for display, as a check now
// would decide it. It writes nothing: a mirror older than
// Config.SubscriptionMaxAge is looked up with Config.Subscriptions and
// decided on, but not stored.
func (g *Gate) Usage(ctx context.Context, userID string) (Usage, error) {
	in, err := g.Inspect(ctx, userID)
	return in.Usage, err
}

// Inspection is what Gate.Inspect reads of a user, for operators and support.
type Inspection struct {
	Usage Usage `json:"usage"`
	// FirstReportHeld is set while a live reservation holds the free first report.
	FirstReportHeld bool `json:"first_report_held"`
	// Anchor is the user's first activity; zero for a user the Store has not seen.
	Anchor time.Time `json:"anchor,omitzero"`
	// CustomerID is the billing provider's customer linked to the user.
	CustomerID string `json:"customer_id,omitempty"`
	// Mirror is the Store's mirror of the user's subscriptions; zero when
	// never mirrored.
	Mirror SubscriptionMirror `json:"mirror"`
	// Fetched is set when the mirror was older than
	// Config.SubscriptionMaxAge and the plan was decided on subscriptions
	// fetched from Config.Subscriptions now; they were not stored.
	Fetched bool `json:"fetched"`
	// FetchError is why such a fetch failed, "" when none did; the plan
	// was then decided as a check decides it (the mirror within
	// Config.SubscriptionGrace, else Config.SubscriptionFallback).
	FetchError string `json:"fetch_error,omitempty"`
	// Fallback is set when the plan is Free by Config.SubscriptionFallback
	// rather than by the user's subscriptions.
	Fallback bool `json:"fallback"`
}

// Inspect reads what the Gate knows of a user: their usage as a check now
// would decide it, the hold on the first report, the linked customer and
// the subscription mirror. Like Usage it writes nothing.
func (g *Gate) Inspect(ctx context.Context, userID string) (in Inspection, err error) {
	ctx, start := g.begin(ctx, OpUsage)
	defer func() { g.finish(ctx, OpUsage, start, err) }()
	if err := validateUserID(userID); err != nil {
		return Inspection{}, err
	}
	now := g.now()
	plan, _, st, err := g.loadOn(ctx, userID, now, false)
	if err != nil {
		return Inspection{}, err
	}
	if g.cfg.Subscriptions != nil && !synced(st.Account.Subscriptions, now, g.cfg.SubscriptionMaxAge) {
		if plan, st, in, err = g.peek(ctx, userID, now, plan, st); err != nil {
			return Inspection{}, err
		}
	}
	in.Usage = g.usage(plan, st)
	in.FirstReportHeld = st.FirstReportHeld
	in.Anchor, in.CustomerID = st.Account.Anchor, st.Account.CustomerID
	in.Mirror = st.Account.Subscriptions
	return in, nil
}

// peekLookup is lookup for peek: concurrent ones for a user in this
// process share one call (a meter polled by many tabs makes one).
func (g *Gate) peekLookup(ctx context.Context, userID, customerID string) ([]Subscription, error) {
	v, err := g.shared(ctx, userID+"\x00peek\x00"+customerID, func(ctx context.Context) (any, error) {
		return g.lookup(ctx, userID, customerID)
	})
	if err != nil {
		return nil, err
	}
	return v.([]Subscription), nil
}

// peek decides the plan of a user whose mirror (in st, on plan) is stale
// on their subscriptions as Config.Subscriptions reports them now, without
// writing them, and reads the state on that plan. When the lookup fails it decides
// as load does: the stale mirror within the grace, else the fallback.
func (g *Gate) peek(ctx context.Context, userID string, now time.Time, plan *Plan, st State) (*Plan, State, Inspection, error) {
	var in Inspection
	subs, err := g.peekLookup(ctx, userID, st.Account.CustomerID)
	if err == nil {
		in.Fetched = true
		u := g.update(subs, now.Truncate(time.Second).Add(-pullMargin), now)
		u.Pulled = true
		fetched, _, _ := st.Account.Subscriptions.Apply(u)
		p := &placement{g: g, now: now}
		fst, err := g.store.Load(ctx, userID, now, func(a Account) Window {
			a.Subscriptions = fetched
			return p.window(a)
		})
		if err != nil {
			return nil, State{}, in, fmt.Errorf("freemium: load: %w", err)
		}
		return p.plan, fst, in, nil
	}
	if ctx.Err() != nil {
		return nil, State{}, in, err
	}
	in.FetchError = err.Error()
	if synced(st.Account.Subscriptions, now, g.cfg.SubscriptionMaxAge+g.cfg.SubscriptionGrace) {
		return plan, st, in, nil
	}
	if g.cfg.SubscriptionFallback == FallbackFree {
		in.Fallback = true
		plan, _, st, err := g.loadOn(ctx, userID, now, true)
		return plan, st, in, err
	}
	return nil, State{}, in, err
}

// Record adds tokens to the user's usage in the current period, for work
// done without a reservation. When the subscription cannot be refreshed, it
// records on the last known one rather than fail. With a non-empty idempotencyKey the tokens are
// counted once, however often and however concurrently Record is called with
// that key for that user; keys are kept indefinitely.
func (g *Gate) Record(ctx context.Context, userID string, tokens int64, idempotencyKey string) (err error) {
	ctx, start := g.begin(ctx, OpRecord)
	defer func() { g.finish(ctx, OpRecord, start, err) }()
	if err := validateRequest(userID, tokens); err != nil {
		return err
	}
	if err := validateText(idempotencyKey); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidIdempotencyKey, err)
	}
	now := g.now()
	plan, w, _, err := g.terms(ctx, userID, now)
	if errors.Is(err, ErrSubscriptionUnavailable) {
		// The work happened: record it on the last known mirror (Free
		// when there is none) rather than lose it.
		g.cfg.Logger.WarnContext(ctx, "freemium: recording on the last known subscription",
			"operation", "record", g.UserAttr(userID), "err", err)
		plan, w, _, err = g.loadOn(ctx, userID, now, false)
	}
	if err != nil {
		return err
	}
	if err := g.store.Record(ctx, userID, w, g.hold(plan, w, userID, tokens, now).Limit, tokens, idempotencyKey, now); err != nil {
		return fmt.Errorf("freemium: record: %w", err)
	}
	return nil
}

// MarkFirstReportUsed consumes the user's free first report for good, for
// hosts that use Check rather than Reserve. (Check and MarkFirstReportUsed
// can race: two Checks may both see the first report free. Reserve claims it
// atomically.)
func (g *Gate) MarkFirstReportUsed(ctx context.Context, userID string) error {
	if err := validateUserID(userID); err != nil {
		return err
	}
	if err := g.store.MarkFirstReportUsed(ctx, userID, g.now()); err != nil {
		return fmt.Errorf("freemium: mark first report used: %w", err)
	}
	return nil
}
