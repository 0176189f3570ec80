package freemium

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"
)

// A Gate decides whether users may spend tokens, and records what they spend.
// All its state lives in its Store, so any number of Gates, in one process or
// many, may share a Store. A Gate is safe for simultaneous use.
type Gate struct {
	cfg      Config
	store    Store              // cfg.Store, bounded and observed (boundStore)
	byPrice  map[string]int     // price ID -> index in cfg.Plans
	catchAll int                // index of the plan without PriceIDs, or -1
	flights  singleflight.Group // refreshes of users' subscriptions, by user
	dispatch dispatcher         // delivery of the outbox, when started

	warned      sync.Map     // keys of the checker's data already warned of (warnOnce)
	warnedCount atomic.Int64 // keys in warned
	mirrors     mirrorCache  // the last fresh mirror read of each user, for Reserve
}

// New returns a Gate for cfg, after filling defaults and validating it. An
// invalid Config is an error that names the field and the fix. New starts
// nothing in the background.
func New(cfg Config) (*Gate, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g := &Gate{cfg: cfg, store: storeFor(cfg), byPrice: map[string]int{}, catchAll: -1}
	g.dispatch.wake = make(chan struct{}, 1)
	for i, p := range cfg.Plans {
		if len(p.PriceIDs) == 0 {
			g.catchAll = i
		}
		for _, id := range p.PriceIDs {
			g.byPrice[id] = i
		}
	}
	return g, nil
}

// Reason says why a Decision blocks.
type Reason string

// The reasons a Decision blocks.
const (
	// ReasonSubscriptionRequired: the Free plan allows nothing more (its
	// limit is 0 and the free first report, if any, is used).
	ReasonSubscriptionRequired Reason = "subscription_required"
	// ReasonLimitExceeded: the plan's allowance for the period is used up.
	ReasonLimitExceeded Reason = "limit_exceeded"
	// ReasonEstimateExceedsRemaining: tokens are left in the period, but
	// fewer than the request's estimate (less what reservations in flight
	// hold): a smaller request may still pass.
	ReasonEstimateExceedsRemaining Reason = "estimate_exceeds_remaining"
)

// Decision is the Gate's answer to "may this user spend about N tokens now?".
type Decision struct {
	Allowed     bool   `json:"allowed"`
	Reason      Reason `json:"reason,omitempty"`      // "" when allowed
	Message     string `json:"message,omitempty"`     // user-facing; "" when allowed
	FirstReport bool   `json:"first_report"`          // allowed through the free first report
	UpgradeURL  string `json:"upgrade_url,omitempty"` // Config.UpgradeURL, when blocked
	// TopUp is the first of Config.TopUps, offered when blocked; zero
	// when none is configured.
	TopUp TopUp `json:"top_up,omitzero"`
	Usage       // as it stood before this request; Overage: this request goes past a soft limit
}

// Err is nil when d allows, and otherwise a *BlockedError, which matches
// ErrBlocked with errors.Is.
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	return &BlockedError{Decision: d}
}

// BlockedError is a blocked Decision as an error, for hosts that propagate it.
type BlockedError struct {
	Decision Decision
}

func (e *BlockedError) Error() string { return e.Decision.Message }

// Is makes errors.Is(err, ErrBlocked) true.
func (e *BlockedError) Is(target error) bool { return target == ErrBlocked }

// Errors returned by the Gate.
var (
	// ErrBlocked matches every *BlockedError.
	ErrBlocked = errors.New("freemium: blocked")
	// ErrInvalidUserID: empty, over 256 bytes, invalid UTF-8, or with control characters.
	ErrInvalidUserID = errors.New("freemium: invalid user ID")
	// ErrInvalidTokens: negative, or more than MaxTokens.
	ErrInvalidTokens = errors.New("freemium: invalid token count")
	// ErrInvalidIdempotencyKey: over 256 bytes, invalid UTF-8, or with control characters.
	ErrInvalidIdempotencyKey = errors.New("freemium: invalid idempotency key")
)

const maxIDBytes = 256

// Check answers whether userID may spend about estimatedTokens now. It
// changes nothing: two Checks may both allow what only one of them can
// spend. Use Reserve where that matters.
func (g *Gate) Check(ctx context.Context, userID string, estimatedTokens int64) (Decision, error) {
	ctx, start := g.begin(ctx, OpCheck)
	d, err := g.check(ctx, userID, estimatedTokens)
	if g.cfg.Observer != nil {
		g.finishDecided(ctx, OpCheck, start, err, d)
	}
	return d, err
}

func (g *Gate) check(ctx context.Context, userID string, estimatedTokens int64) (Decision, error) {
	if err := validateRequest(userID, estimatedTokens); err != nil {
		return Decision{}, err
	}
	now := g.now()
	plan, w, s, err := g.load(ctx, userID, now)
	if err != nil {
		return Decision{}, err
	}
	admitted, first := g.hold(plan, w, userID, estimatedTokens, now).Admit(s)
	if !admitted && g.recheck(ctx, userID, s, now) {
		if plan, w, s, err = g.loadOn(ctx, userID, now, false); err != nil {
			return Decision{}, err
		}
		admitted, first = g.hold(plan, w, userID, estimatedTokens, now).Admit(s)
	}
	d := g.decide(plan, s, estimatedTokens, admitted, first)
	g.notice(ctx, userID, plan, s, d)
	return d, nil
}

// terms resolves the user's plan and its window at now, for a write, with
// the state load read. Without Subscriptions everyone is on Free, and the
// Store is not asked: the state is zero.
func (g *Gate) terms(ctx context.Context, userID string, now time.Time) (*Plan, Window, State, error) {
	if g.cfg.Subscriptions == nil {
		return &g.cfg.Free, g.cfg.Free.Period.window(now, nil), State{}, nil
	}
	return g.load(ctx, userID, now)
}

// hold is the Hold that asks for tokens on plan p; a soft limit admits everything.
func (g *Gate) hold(p *Plan, w Window, userID string, tokens int64, now time.Time) Hold {
	limit := p.Limit
	if p.SoftLimit {
		limit = Unlimited
	}
	return Hold{
		UserID:      userID,
		Window:      w,
		Tokens:      tokens,
		Limit:       limit,
		FirstReport: p.FirstReportFree,
		ExpiresAt:   now.Add(g.cfg.ReservationTTL).Truncate(time.Microsecond),
	}
}

// decide turns a store's answer into a Decision.
func (g *Gate) decide(p *Plan, s State, tokens int64, admitted, first bool) Decision {
	d := Decision{Allowed: admitted, FirstReport: first, Usage: g.usage(p, s)}
	d.Overage = p.SoftLimit && p.Limit != Unlimited && !first &&
		addSat(addSat(s.Used, s.Reserved), tokens) > p.Limit
	if admitted {
		return d
	}
	d.UpgradeURL = g.cfg.UpgradeURL
	d.Reason = ReasonLimitExceeded
	msg := g.cfg.Messages.LimitExceeded
	switch {
	case s.Credits > 0:
		// Credits are left: the estimate is what does not fit.
		d.Reason, msg = ReasonEstimateExceedsRemaining, g.cfg.Messages.EstimateExceedsRemaining
	case p == &g.cfg.Free && p.Limit == 0 && p.FirstReportFree:
		d.Reason, msg = ReasonSubscriptionRequired, g.cfg.Messages.SubscriptionRequired
	case p == &g.cfg.Free && p.Limit == 0:
		d.Reason, msg = ReasonSubscriptionRequired, g.cfg.Messages.SubscriptionRequiredNoFreeReport
	case !out(p, s):
		// Usage has not reached the limit: the estimate, with what
		// reservations in flight hold, is what does not fit.
		d.Reason, msg = ReasonEstimateExceedsRemaining, g.cfg.Messages.EstimateExceedsRemaining
	case p == &g.cfg.Free:
		msg = g.cfg.Messages.FreeLimitExceeded
	case d.PeriodEnd.IsZero():
		msg = g.cfg.Messages.LimitExceededNoReset
	}
	if d.TopUp = g.offer(); d.TopUp.Tokens > 0 {
		msg += g.cfg.Messages.TopUpOffer
	}
	d.Message = render(msg, d, tokens)
	return d
}

// offer is the top-up offered to a blocked user: the first of
// Config.TopUps, zero for none.
func (g *Gate) offer() TopUp {
	if len(g.cfg.TopUps) == 0 {
		return TopUp{}
	}
	return g.cfg.TopUps[0]
}

// render fills a message's placeholders, for decision d on a request of
// estimate tokens.
func render(msg string, d Decision, estimate int64) string {
	u := d.Usage
	if !strings.Contains(msg, "{") {
		return msg
	}
	periodEnd := "the period ends"
	if !u.PeriodEnd.IsZero() {
		periodEnd = u.PeriodEnd.UTC().Format("January 2, 2006")
	}
	limit, remaining := "unlimited", "unlimited"
	if u.Limit != Unlimited {
		limit, remaining = groupDigits(u.Limit), groupDigits(u.Remaining)
	}
	return strings.NewReplacer(
		"{percent}", strconv.FormatFloat(u.Percentage, 'f', 0, 64),
		"{used}", groupDigits(u.Used),
		"{limit}", limit,
		"{remaining}", remaining,
		"{estimate}", groupDigits(estimate),
		"{plan}", u.Plan,
		"{period_end}", periodEnd,
		"{top_up}", groupDigits(d.TopUp.Tokens),
	).Replace(msg)
}

// groupDigits writes n with commas between groups of three digits, as
// "12,500".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && c != '-' && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Logger returns the Config.Logger the Gate reports to, for adapters that
// serve on the Gate's behalf (webhook handlers) to report to the same place.
func (g *Gate) Logger() *slog.Logger { return g.cfg.Logger }

// now is the Gate's clock in UTC, at the microsecond precision Stores keep.
func (g *Gate) now() time.Time {
	return g.cfg.Now().UTC().Truncate(time.Microsecond)
}

func validateRequest(userID string, tokens int64) error {
	if err := validateUserID(userID); err != nil {
		return err
	}
	return validateTokens(tokens)
}

func validateUserID(id string) error {
	if err := validateText(id); err != nil || id == "" {
		if id == "" {
			err = errors.New("empty")
		}
		return fmt.Errorf("%w: %v", ErrInvalidUserID, err)
	}
	return nil
}

func validateTokens(n int64) error {
	if n < 0 || n > MaxTokens {
		return fmt.Errorf("%w: %d is not in [0, %d]", ErrInvalidTokens, n, MaxTokens)
	}
	return nil
}

// validateText accepts at most 256 bytes of UTF-8 without control characters.
func validateText(s string) error {
	if len(s) > maxIDBytes {
		return fmt.Errorf("%d bytes, more than %d", len(s), maxIDBytes)
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return fmt.Errorf("invalid UTF-8 at byte %d", i)
			}
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %U at byte %d", r, i)
		}
	}
	return nil
}
