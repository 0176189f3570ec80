package freemium

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Usage is a user's consumption of their plan in the current period.
type Usage struct {
	Plan      string `json:"plan"`
	Used      int64  `json:"used"`      // tokens recorded in the period
	Reserved  int64  `json:"reserved"`  // tokens of live holds
	Limit     int64  `json:"limit"`     // the plan's limit, or Unlimited
	Remaining int64  `json:"remaining"` // Limit-Used-Reserved, at least 0; Unlimited when uncapped
	// Percentage is Used/Limit*100. It may pass 100 when actual usage outran
	// estimates; a zero limit reads as 100 and Unlimited as 0.
	Percentage float64 `json:"percentage"`
	// Warning is set when Percentage has reached Config.WarnAt.
	Warning bool `json:"warning"`
	// Overage is set on a soft-limited plan past its limit.
	Overage         bool `json:"overage"`
	FirstReportUsed bool `json:"first_report_used"`
	// PeriodStart and PeriodEnd bound the current window; both are zero for
	// Lifetime, which never resets.
	PeriodStart time.Time `json:"period_start,omitzero"`
	PeriodEnd   time.Time `json:"period_end,omitzero"`
}

// usage is the Usage of a user on plan p in state s.
func (g *Gate) usage(p *Plan, s State) Usage {
	u := Usage{
		Plan:            p.Name,
		Used:            s.Used,
		Reserved:        s.Reserved,
		Limit:           p.Limit,
		Remaining:       Unlimited,
		FirstReportUsed: s.FirstReportUsed,
	}
	if p.Period != Lifetime {
		u.PeriodStart, u.PeriodEnd = s.PeriodStart, s.PeriodEnd
	}
	if p.Limit == Unlimited {
		return u
	}
	u.Remaining = max(0, p.Limit-addSat(s.Used, s.Reserved))
	u.Percentage = 100
	if p.Limit > 0 {
		u.Percentage = float64(s.Used) / float64(p.Limit) * 100
	}
	u.Warning = u.Percentage >= g.cfg.WarnAt*100
	u.Overage = p.SoftLimit && addSat(s.Used, s.Reserved) > p.Limit
	return u
}

// Usage returns the user's current usage, for display. It changes nothing.
func (g *Gate) Usage(ctx context.Context, userID string) (Usage, error) {
	if err := validateUserID(userID); err != nil {
		return Usage{}, err
	}
	plan, _, s, err := g.load(ctx, userID, g.now())
	if err != nil {
		return Usage{}, err
	}
	return g.usage(plan, s), nil
}

// Record adds tokens to the user's usage in the current period, for work
// done without a reservation. When the subscription cannot be refreshed, it
// records on the last known one rather than fail. With a non-empty idempotencyKey the tokens are
// counted once, however often and however concurrently Record is called with
// that key for that user; keys are kept indefinitely.
func (g *Gate) Record(ctx context.Context, userID string, tokens int64, idempotencyKey string) error {
	if err := validateRequest(userID, tokens); err != nil {
		return err
	}
	if err := validateText(idempotencyKey); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidIdempotencyKey, err)
	}
	now := g.now()
	_, w, _, err := g.terms(ctx, userID, now)
	if errors.Is(err, ErrSubscriptionUnavailable) {
		// The work happened: record it on the last known mirror (Free
		// when there is none) rather than lose it.
		g.cfg.Logger.WarnContext(ctx, "freemium: recording on the last known subscription", "user_id", userID, "err", err)
		_, w, _, err = g.loadOn(ctx, userID, now, false)
	}
	if err != nil {
		return err
	}
	if err := g.cfg.Store.Record(ctx, userID, w, tokens, idempotencyKey, now); err != nil {
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
	if err := g.cfg.Store.MarkFirstReportUsed(ctx, userID, g.now()); err != nil {
		return fmt.Errorf("freemium: mark first report used: %w", err)
	}
	return nil
}
