package freemium

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"time"
)

// Unlimited is the Plan.Limit of a plan without a cap. Usage.Limit and
// Usage.Remaining read Unlimited for such a plan too.
const Unlimited int64 = -1

// MaxTokens is the largest token count the Gate accepts in one call. It keeps
// every sum far from int64 overflow.
const MaxTokens int64 = 1_000_000_000_000_000

// Config configures a Gate. Only Store is required; every other field has a
// default, given at the end of its comment.
type Config struct {
	// Store keeps all state: usage, reservations, first-report flags.
	// Required: NewMemoryStore(), or a *pgstore.Store from pgstore.New.
	Store Store

	// Subscriptions reports each user's subscription, which places the user
	// on a paid plan. Default nil: nobody has a subscription, everyone is on Free.
	Subscriptions SubscriptionChecker

	// Notifier delivers the notifications the Gate enqueues in the Store's
	// outbox (usage warnings, upgrade prompts, limits reached), when Start
	// runs delivery or the host calls DispatchOnce. Default nil: nothing is
	// sent; limit hits are still recorded for Funnel.
	Notifier Notifier

	// Delivery tunes the delivery of notifications. Default: the defaults
	// of each DeliveryConfig field.
	Delivery DeliveryConfig

	// AttributionWindow is how long after a user's first upgrade prompt a
	// conversion counts for it in Funnel. Default 30 days.
	AttributionWindow time.Duration

	// Free is the plan of users without an active subscription. Its PriceIDs
	// must be empty. Default: the zero Plan named "free", which allows nothing.
	Free Plan

	// Plans are the paid plans, matched to subscriptions by PriceIDs. A user
	// is on the best plan that any item of any of their subscriptions
	// places them on: active and trialing subscriptions first, then
	// past_due ones within PastDueGrace; of those, the largest Limit
	// (Unlimited first), then the plan listed first. A subscription or item
	// whose price no plan lists never displaces one that a plan lists. At
	// most one plan may leave PriceIDs empty: it takes a user whose active
	// subscriptions no other plan claims. Default none.
	Plans []Plan

	// WarnAt is the fraction of the limit at which Usage.Warning is set,
	// in (0, 1]. Default 0.8.
	WarnAt float64

	// UpgradeURL is put into blocked decisions, for the host to show, and
	// into notifications. With a Notifier it must be an absolute http or
	// https URL: an email's link has no page to be relative to. Default "".
	UpgradeURL string

	// TopUps are the packs of tokens users can buy once, each for a
	// one-time price (Gate.TopUpURL): a user who runs out buys one rather
	// than wait or upgrade. The first is offered in blocked decisions
	// (Decision.TopUp, Messages.TopUpOffer). Default none.
	TopUps []TopUp

	// Messages are the user-facing texts of blocked decisions.
	// Default: the texts of DefaultMessages.
	Messages Messages

	// ReservationTTL is how long a reservation's hold counts against the
	// limit when it is neither committed nor canceled. A reservation can still
	// be committed after it (the usage is recorded) for a day. Default 15m.
	ReservationTTL time.Duration

	// SubscriptionMaxAge is how old the Store's mirror of a user's
	// subscription may be before a check refreshes it from Subscriptions.
	// Whatever it is, a check about to block refreshes a mirror older than
	// a minute, so a user who just paid is let through. Raise it when
	// webhooks keep the mirror current (stripesub.WebhookHandler). Default 5m.
	SubscriptionMaxAge time.Duration

	// SubscriptionGrace is how long past SubscriptionMaxAge a mirror is
	// still served when Subscriptions fails: a mirror synced at T serves
	// until T+SubscriptionMaxAge+SubscriptionGrace. Past it,
	// SubscriptionFallback decides. Default 1h.
	SubscriptionGrace time.Duration

	// SubscriptionFallback is what a check does when Subscriptions fails
	// and the mirror is past SubscriptionGrace (or there is none).
	// Default FallbackError: the check fails with ErrSubscriptionUnavailable.
	SubscriptionFallback Fallback

	// StoreTimeout bounds each call to Store whose context has no sooner
	// deadline, so that a database that stops answering fails a request
	// (503, or served ungated with MiddlewareOptions.FailOpen) instead of
	// hanging it. A MemoryStore's calls are not bounded: they wait for
	// nothing. Default 3s.
	StoreTimeout time.Duration

	// Observer is told of every operation and event, for metrics and
	// traces (the otelfreemium package is one). Default nil: none.
	Observer Observer

	// UserIDLogging says how log records name users: as they are, hashed,
	// or not at all, for hosts whose user IDs are email addresses.
	// Default LogUserID.
	UserIDLogging UserIDLogging

	// SubscriptionTimeout bounds one refresh from Subscriptions on the check
	// path; concurrent checks for a user share it. Default 5s.
	SubscriptionTimeout time.Duration

	// PastDueGrace is how long after its CurrentPeriodEnd a past_due
	// subscription keeps its plan. In the grace the user stays in that
	// period, with what is left of its allowance: a BillingCycle plan gives
	// no new one until the subscription is paid. Default 0: until the
	// period ends.
	PastDueGrace time.Duration

	// Now is the clock. Default time.Now.
	Now func() time.Time

	// Logger receives warnings, such as a subscription whose price matches no
	// plan. Default slog.Default().
	Logger *slog.Logger

	// Gated are the requests Gate.Middleware gates when its
	// MiddlewareOptions.Gated is empty, as net/http ServeMux patterns
	// ("POST /api/features/"). configfile.Parse sets them from the config's
	// trigger. Default none: every request.
	Gated []string
}

// Plan is what a user may spend in a period.
type Plan struct {
	// Name identifies the plan in Usage and decisions. Required for paid
	// plans; Free defaults to "free".
	Name string

	// PriceIDs are the billing provider's price IDs that place a subscriber
	// on this plan. Default none.
	PriceIDs []string

	// Limit is the number of tokens allowed per period, or Unlimited.
	// Default 0: nothing beyond a free first report.
	Limit int64

	// Period is the window Limit applies to. Default CalendarMonth (the zero Period).
	Period Period

	// FirstReportFree allows one metered run once per user, whatever its
	// size and whatever the limit. Default false.
	FirstReportFree bool

	// SoftLimit allows requests past Limit and marks them with Overage,
	// instead of blocking. Default false.
	SoftLimit bool
}

// Messages are the user-facing texts of blocked decisions. In each, the
// placeholders {percent}, {used}, {limit}, {remaining}, {estimate} (the
// request's), {plan} and {period_end} are replaced by the decision's
// figures; counts are written like "12,500", and {period_end} is a date
// like "December 1, 2026".
type Messages struct {
	// SubscriptionRequired is shown when the free first report is used and
	// the Free plan allows nothing more.
	SubscriptionRequired string
	// SubscriptionRequiredNoFreeReport is shown when the Free plan allows
	// nothing at all (no free first report, Limit 0).
	SubscriptionRequiredNoFreeReport string
	// LimitExceeded is shown when a paid plan's allowance is used up.
	LimitExceeded string
	// LimitExceededNoReset replaces LimitExceeded for a plan whose period never
	// ends (Lifetime).
	LimitExceededNoReset string
	// FreeLimitExceeded is shown when the Free plan's allowance is used up.
	FreeLimitExceeded string
	// EstimateExceedsRemaining is shown when tokens are left in the
	// period, but fewer than the request's estimate.
	EstimateExceedsRemaining string
	// TopUpOffer is added to the other messages when Config.TopUps is
	// set; {top_up} is the first top-up's tokens.
	TopUpOffer string
}

// DefaultMessages are the texts used for the Messages fields left empty.
var DefaultMessages = Messages{
	SubscriptionRequired:             "Your free report has been used. Please subscribe to generate more reports.",
	SubscriptionRequiredNoFreeReport: "Please subscribe to generate reports.",
	LimitExceeded:                    "Usage limit reached ({percent}% used). Upgrade your plan or wait until {period_end}.",
	LimitExceededNoReset:             "Usage limit reached ({percent}% used). Upgrade your plan to continue.",
	FreeLimitExceeded:                "You've reached your free tier limit. Upgrade to continue.",
	EstimateExceedsRemaining:         "This report needs about {estimate} tokens, more than the {remaining} left this period.",
	TopUpOffer:                       " Or buy {top_up} more tokens to go on now.",
}

// DeliveryConfig tunes the delivery of notifications from the outbox.
type DeliveryConfig struct {
	// MaxAttempts is how many times a notification is tried before it is
	// marked failed. Default 8.
	MaxAttempts int
	// Backoff is the wait before the first retry; each later one doubles
	// it, up to MaxBackoff, with jitter, and at least the provider's
	// Retry-After (up to MaxBackoff too). Default 30s.
	Backoff time.Duration
	// MaxBackoff caps the wait between attempts, a provider's Retry-After
	// included. Default 1h.
	MaxBackoff time.Duration
	// BatchSize is how many notifications one DispatchOnce claims.
	// Default 50.
	BatchSize int
	// Concurrency is how many sends run at once. Default 4.
	Concurrency int
	// SendTimeout bounds one Notify call. Default 30s.
	SendTimeout time.Duration
	// PollInterval is how often Start's loop looks for due notifications
	// when it has not been woken by an enqueue. Default 1s.
	PollInterval time.Duration
	// IdempotencyWindow is how long the Notifier's provider keeps a
	// Notification.ID as an idempotency key: within it, a retry of a send
	// the provider accepted (its reply lost) is not delivered again. No
	// retry starts later than IdempotencyWindow less SendTimeout after the
	// notification was made: its first attempt came no earlier, so the
	// provider still knows the key. A notification that would need one
	// fails instead, logged. A first attempt goes however late: nothing
	// was sent before it. Raise it for a provider that keeps keys longer.
	// Default 24h, Resend's.
	IdempotencyWindow time.Duration
}

func (d DeliveryConfig) withDefaults() DeliveryConfig {
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&d.MaxAttempts, 8)
	setInt(&d.BatchSize, 50)
	setInt(&d.Concurrency, 4)
	setDur(&d.Backoff, 30*time.Second)
	setDur(&d.MaxBackoff, time.Hour)
	setDur(&d.SendTimeout, 30*time.Second)
	setDur(&d.PollInterval, time.Second)
	setDur(&d.IdempotencyWindow, 24*time.Hour)
	return d
}

func (d DeliveryConfig) validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"MaxAttempts", int64(d.MaxAttempts)}, {"BatchSize", int64(d.BatchSize)}, {"Concurrency", int64(d.Concurrency)},
		{"Backoff", int64(d.Backoff)}, {"MaxBackoff", int64(d.MaxBackoff)}, {"SendTimeout", int64(d.SendTimeout)}, {"PollInterval", int64(d.PollInterval)},
		{"IdempotencyWindow", int64(d.IdempotencyWindow)}} {
		if f.v < 0 {
			return fmt.Errorf("freemium: Config.Delivery.%s is negative: use a positive value, or 0 for the default", f.name)
		}
	}
	if d.MaxBackoff < d.Backoff {
		return fmt.Errorf("freemium: Config.Delivery.MaxBackoff (%v) is less than Backoff (%v): raise MaxBackoff", d.MaxBackoff, d.Backoff)
	}
	if d.IdempotencyWindow <= d.SendTimeout {
		return fmt.Errorf("freemium: Config.Delivery.IdempotencyWindow (%v) is not longer than SendTimeout (%v): no retry would fit in it; use the provider's window (Resend: 24h)", d.IdempotencyWindow, d.SendTimeout)
	}
	return nil
}

// Fallback is what a check does when the subscription cannot be known.
type Fallback uint8

const (
	// FallbackError fails the check with an error matching
	// ErrSubscriptionUnavailable; the middleware answers 503, or serves
	// ungated with FailOpen.
	FallbackError Fallback = iota
	// FallbackFree decides on the Free plan: its limit and its window. No
	// notification is made of such a decision.
	FallbackFree
)

const (
	defaultWarnAt              = 0.8
	defaultReservationTTL      = 15 * time.Minute
	defaultFreePlanName        = "free"
	defaultSubscriptionMaxAge  = 5 * time.Minute
	defaultSubscriptionGrace   = time.Hour
	defaultSubscriptionTimeout = 5 * time.Second
	defaultStoreTimeout        = 3 * time.Second
)

func (c Config) withDefaults() Config {
	if c.WarnAt == 0 {
		c.WarnAt = defaultWarnAt
	}
	if c.ReservationTTL == 0 {
		c.ReservationTTL = defaultReservationTTL
	}
	c.Delivery = c.Delivery.withDefaults()
	if c.AttributionWindow == 0 {
		c.AttributionWindow = 30 * 24 * time.Hour
	}
	if c.SubscriptionMaxAge == 0 {
		c.SubscriptionMaxAge = defaultSubscriptionMaxAge
	}
	if c.SubscriptionGrace == 0 {
		c.SubscriptionGrace = defaultSubscriptionGrace
	}
	if c.SubscriptionTimeout == 0 {
		c.SubscriptionTimeout = defaultSubscriptionTimeout
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = defaultStoreTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Free.Name == "" {
		c.Free.Name = defaultFreePlanName
	}
	c.Messages = c.Messages.withDefaults()
	c.Plans = append([]Plan(nil), c.Plans...) // the Gate keeps its own copy
	c.Gated = append([]string(nil), c.Gated...)
	return c
}

func (m Messages) withDefaults() Messages {
	set := func(s *string, def string) {
		if *s == "" {
			*s = def
		}
	}
	set(&m.SubscriptionRequired, DefaultMessages.SubscriptionRequired)
	set(&m.SubscriptionRequiredNoFreeReport, DefaultMessages.SubscriptionRequiredNoFreeReport)
	set(&m.LimitExceeded, DefaultMessages.LimitExceeded)
	set(&m.LimitExceededNoReset, DefaultMessages.LimitExceededNoReset)
	set(&m.FreeLimitExceeded, DefaultMessages.FreeLimitExceeded)
	set(&m.EstimateExceedsRemaining, DefaultMessages.EstimateExceedsRemaining)
	set(&m.TopUpOffer, DefaultMessages.TopUpOffer)
	return m
}

// validate reports the first invalid field of a defaulted Config, by name,
// with the fix.
func (c Config) validate() error {
	if c.Store == nil {
		return errors.New("freemium: Config.Store is nil: use NewMemoryStore(), or pgstore.New(pool, nil) from the pgstore package")
	}
	if math.IsNaN(c.WarnAt) || c.WarnAt <= 0 || c.WarnAt > 1 {
		return fmt.Errorf("freemium: Config.WarnAt is %v: use a fraction in (0, 1], such as 0.8", c.WarnAt)
	}
	if c.ReservationTTL < 0 {
		return fmt.Errorf("freemium: Config.ReservationTTL is %v: use a positive duration, or 0 for the default 15m", c.ReservationTTL)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"SubscriptionMaxAge", c.SubscriptionMaxAge}, {"SubscriptionGrace", c.SubscriptionGrace}, {"SubscriptionTimeout", c.SubscriptionTimeout}, {"PastDueGrace", c.PastDueGrace},
		{"StoreTimeout", c.StoreTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("freemium: Config.%s is %v: use a positive duration, or 0 for the default", d.name, d.v)
		}
	}
	if c.Notifier != nil && c.UpgradeURL != "" {
		if u, err := url.Parse(c.UpgradeURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("freemium: Config.UpgradeURL %q is not an absolute http(s) URL: emails need one, such as https://example.com/pricing", c.UpgradeURL)
		}
	}
	if err := c.Delivery.validate(); err != nil {
		return err
	}
	if c.AttributionWindow < 0 {
		return fmt.Errorf("freemium: Config.AttributionWindow is %v: use a positive duration, or 0 for the default 30 days", c.AttributionWindow)
	}
	if c.UserIDLogging > OmitUserID {
		return fmt.Errorf("freemium: Config.UserIDLogging is %d: use LogUserID, HashUserID or OmitUserID", c.UserIDLogging)
	}
	if c.SubscriptionFallback > FallbackFree {
		return fmt.Errorf("freemium: Config.SubscriptionFallback is %d: use FallbackError or FallbackFree", c.SubscriptionFallback)
	}
	if len(c.Free.PriceIDs) > 0 {
		return errors.New("freemium: Config.Free.PriceIDs is set: the Free plan has no price; move the IDs to a plan in Config.Plans")
	}
	if err := c.Free.validate("Config.Free"); err != nil {
		return err
	}
	names := map[string]string{c.Free.Name: "Config.Free"}
	prices := map[string]string{}
	catchAll := ""
	for i, p := range c.Plans {
		field := fmt.Sprintf("Config.Plans[%d]", i)
		if p.Name == "" {
			return fmt.Errorf("freemium: %s.Name is empty: give every paid plan a name", field)
		}
		if other, ok := names[p.Name]; ok {
			return fmt.Errorf("freemium: %s.Name %q is also the name of %s: plan names must be unique", field, p.Name, other)
		}
		names[p.Name] = field
		if err := p.validate(field); err != nil {
			return err
		}
		if len(p.PriceIDs) == 0 {
			if catchAll != "" {
				return fmt.Errorf("freemium: %s and %s both have no PriceIDs: at most one plan may take any subscription", catchAll, field)
			}
			catchAll = field
		}
		for j, id := range p.PriceIDs {
			if id == "" {
				return fmt.Errorf("freemium: %s.PriceIDs[%d] is empty: remove it or give the price ID", field, j)
			}
			if other, ok := prices[id]; ok {
				return fmt.Errorf("freemium: %s.PriceIDs[%d] %q is also in %s: a price places a subscriber on one plan", field, j, id, other)
			}
			prices[id] = field
		}
	}
	for i, t := range c.TopUps {
		field := fmt.Sprintf("Config.TopUps[%d]", i)
		switch {
		case t.PriceID == "":
			return fmt.Errorf("freemium: %s.PriceID is empty: give the pack's one-time price ID", field)
		case prices[t.PriceID] != "":
			return fmt.Errorf("freemium: %s.PriceID %q is also in %s: a price is a plan's or a top-up's", field, t.PriceID, prices[t.PriceID])
		case t.Tokens <= 0 || t.Tokens > MaxTokens:
			return fmt.Errorf("freemium: %s.Tokens is %d: use a token count in [1, %d]", field, t.Tokens, MaxTokens)
		case t.Validity < 0:
			return fmt.Errorf("freemium: %s.Validity is %v: use a positive duration, or 0 for tokens that last until spent", field, t.Validity)
		}
		prices[t.PriceID] = field
	}
	if i, err := checkPatterns(c.Gated); err != nil {
		return fmt.Errorf("freemium: Config.Gated[%d] %q: %v: use net/http ServeMux patterns such as \"POST /api/features/\", each once", i, c.Gated[i], err)
	}
	return nil
}

func (p Plan) validate(field string) error {
	if p.Limit < Unlimited {
		return fmt.Errorf("freemium: %s.Limit is %d: use a token count >= 0, or Unlimited", field, p.Limit)
	}
	if p.Limit > MaxTokens*1000 {
		return fmt.Errorf("freemium: %s.Limit is %d: use at most %d, or Unlimited", field, p.Limit, MaxTokens*1000)
	}
	if err := p.Period.validate(); err != nil {
		return fmt.Errorf("freemium: %s.Period: %w", field, err)
	}
	return nil
}
