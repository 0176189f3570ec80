package freemium

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"time"
)

// An Observer is told what a Gate does, for metrics and traces: the
// operations it runs and how they end, and the events between them. Set
// it in Config.Observer; the otelfreemium package implements it with
// OpenTelemetry. The Gate calls it on the request's path, so its methods
// must be quick, and safe for simultaneous use.
type Observer interface {
	// Start is called as an operation begins. The operation runs with the
	// context it returns, which End is given too: a tracer starts a span
	// in it, and the operation's Store calls and refreshes are inside.
	Start(ctx context.Context, op Op) context.Context
	// End is called when the operation ends, with its outcome.
	End(ctx context.Context, op Op, r OpResult)
	// Event is called for what happens in or between operations:
	// notifications enqueued and delivered, conversions, webhook events.
	Event(ctx context.Context, e Event)
}

// Op names an operation a Gate runs, as an Observer sees it.
type Op string

// The operations. Those of the Gate are its methods; OpStore ones are the
// calls it makes to its Store (a MemoryStore's are not observed: they wait
// for nothing; nor is ClaimNotifications, which Start polls).
const (
	OpCheck             Op = "check"
	OpReserve           Op = "reserve"
	OpCommit            Op = "commit"
	OpCancel            Op = "cancel"
	OpRecord            Op = "record"
	OpUsage             Op = "usage" // Usage and Inspect
	OpRefresh           Op = "refresh"
	OpApplySubscription Op = "apply_subscription"
	OpDispatch          Op = "dispatch" // one batch of deliveries (DispatchOnce, or a round of Start's loop) that claimed any

	OpStore Op = "store." // followed by the Store method, as "store.Reserve"
)

// OpResult is how an operation ended.
type OpResult struct {
	// Err is the operation's error, nil when it succeeded.
	Err error
	// Duration is how long it took.
	Duration time.Duration
	// Decided is set for OpCheck and OpReserve without an error, and
	// Decision is then the decision made.
	Decided  bool
	Decision Decision
}

// Event is something that happened, as an Observer sees it. Kind says which
// of the other fields are set.
type Event struct {
	Kind EventKind
	// Notification is the kind of the notification, for
	// EventNotificationEnqueued and EventNotificationDelivered.
	Notification NotificationKind
	// Outcome is, for EventNotificationDelivered, "sent", "retry" (a
	// temporary failure) or "failed" (given up); for EventWebhook,
	// "applied", "ignored" (a duplicate, an event of no interest, or of no
	// known user), "rejected" (bad signature or payload) or "error" (to be
	// retried by the provider).
	Outcome string
	// Attempt is the delivery attempt, from 1, for EventNotificationDelivered.
	Attempt int
	// Plan is the paid plan converted to, for EventConversion.
	Plan string
	// Type is the provider's event type, for EventWebhook
	// ("customer.subscription.updated").
	Type string
	// PriceID is the top-up's price, for EventTopUp.
	PriceID string
}

// EventKind says what an Event is.
type EventKind string

// The kinds of Event.
const (
	EventNotificationEnqueued  EventKind = "notification_enqueued"
	EventNotificationDelivered EventKind = "notification_delivered"
	EventConversion            EventKind = "conversion"
	EventWebhook               EventKind = "webhook"
	EventTopUp                 EventKind = "top_up" // a top-up granted (Gate.ApplyTopUp), once per payment
)

// Observe reports e to Config.Observer, if any, for adapters that act on
// the Gate's behalf (webhook handlers report EventWebhook).
func (g *Gate) Observe(ctx context.Context, e Event) {
	if g.cfg.Observer != nil {
		g.cfg.Observer.Event(ctx, e)
	}
}

// begin starts operation op with the Observer, if any: it returns the
// context to run op with and its start time (zero without an Observer).
func (g *Gate) begin(ctx context.Context, op Op) (context.Context, time.Time) {
	if g.cfg.Observer == nil {
		return ctx, time.Time{}
	}
	return g.cfg.Observer.Start(ctx, op), time.Now()
}

// finish ends operation op begun at start, with its error.
func (g *Gate) finish(ctx context.Context, op Op, start time.Time, err error) {
	if g.cfg.Observer == nil {
		return
	}
	g.cfg.Observer.End(ctx, op, OpResult{Err: err, Duration: time.Since(start)})
}

// finishDecided is finish for an operation that made decision d, unless
// it failed.
func (g *Gate) finishDecided(ctx context.Context, op Op, start time.Time, err error, d Decision) {
	r := OpResult{Err: err, Duration: time.Since(start)}
	if err == nil {
		r.Decided, r.Decision = true, d
	}
	g.cfg.Observer.End(ctx, op, r)
}

// UserIDLogging says how a Gate's log records name users.
type UserIDLogging uint8

const (
	// LogUserID writes the user ID as it is.
	LogUserID UserIDLogging = iota
	// HashUserID writes "sha256:" and the first 16 hex digits of the
	// SHA-256 of the user ID: records of one user stay linkable, and an
	// email address used as an ID is not written out. (It is a pseudonym,
	// not a secret: an ID that can be guessed can be checked against it.)
	HashUserID
	// OmitUserID writes no user.
	OmitUserID
)

// UserAttr is the log attribute that names the user as
// Config.UserIDLogging says: key user_id, or an empty attribute (which slog
// drops) under OmitUserID. Adapters that log on the Gate's behalf use it.
func (g *Gate) UserAttr(userID string) slog.Attr {
	switch g.cfg.UserIDLogging {
	case HashUserID:
		sum := sha256.Sum256([]byte(userID))
		return slog.String("user_id", "sha256:"+hex.EncodeToString(sum[:8]))
	case OmitUserID:
		return slog.Attr{}
	}
	return slog.String("user_id", userID)
}
