package freemium

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// A Notifier delivers notifications to users, by email or otherwise.
// Implementations must be safe for simultaneous use.
//
// Notify may be called more than once for one Notification (a retry after a
// timeout, or after a crash before the delivery was recorded): an
// implementation passes Notification.ID to its provider as the idempotency
// key, so that the user receives one message.
//
// Notify's error says whether to try again. An error that is, or wraps, a
// *NotifyError with Permanent set will fail again however often it is
// retried (a validation error, a user without an address): the caller gives
// up at once. Every other error is temporary (a network failure, a 5xx, a
// rate limit): the caller retries with backoff, waiting at least the
// NotifyError's RetryAfter when it has one. A nil error means delivered.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// Notification is one message to one user about their usage.
type Notification struct {
	// ID is stable across retries of the same message, and is passed to the
	// provider as the idempotency key. At most 256 bytes, without control
	// characters.
	ID         string
	Kind       NotificationKind
	UserID     string
	Usage      Usage  // the user's usage when the notification was made
	UpgradeURL string // where the user goes to upgrade
	// TopUp is the pack of tokens the user may buy instead (the first of
	// Config.TopUps when the notification is sent); zero for none.
	TopUp     TopUp
	CreatedAt time.Time
}

// NotificationKind says what happened to the user.
type NotificationKind string

// The kinds of notification.
const (
	// UsageWarning: the user's usage crossed Config.WarnAt.
	UsageWarning NotificationKind = "usage_warning"
	// UpgradePrompt: a user on the Free plan was blocked.
	UpgradePrompt NotificationKind = "upgrade_prompt"
	// LimitReached: a user on a paid plan was blocked.
	LimitReached NotificationKind = "limit_reached"
)

// notificationKinds are the known kinds, in the order they happen.
var notificationKinds = []NotificationKind{UsageWarning, UpgradePrompt, LimitReached}

func (k NotificationKind) valid() bool {
	return k == UsageWarning || k == UpgradePrompt || k == LimitReached
}

// NotifyError is a failed delivery that says how to retry it; see Notifier.
type NotifyError struct {
	// Status is the provider's HTTP status, 0 when no response came back.
	Status int
	// RetryAfter is how long the provider asked to wait (the Retry-After of
	// a 429); 0 when it did not say.
	RetryAfter time.Duration
	// Permanent is set when retrying cannot succeed.
	Permanent bool
	// Err is the cause.
	Err error
}

// Error says what failed, and whether and when to retry.
func (e *NotifyError) Error() string {
	msg := "freemium: notify"
	if e.Status != 0 {
		msg += fmt.Sprintf(": status %d", e.Status)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	switch {
	case e.Permanent:
		msg += " (permanent)"
	case e.RetryAfter > 0:
		msg += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	return msg
}

// Unwrap returns Err, for errors.Is and errors.As.
func (e *NotifyError) Unwrap() error { return e.Err }

// ErrNoRecipient: the user has no address to notify. Notifiers return it
// wrapped in a permanent *NotifyError.
var ErrNoRecipient = errors.New("freemium: user has no address to notify")

// Validate checks what every Notifier may rely on (an ID, a known kind, a
// valid user ID), for a Notifier whose caller is not the Gate: it returns
// a permanent *NotifyError that says what is wrong, or nil.
func (n Notification) Validate() error {
	var err error
	switch {
	case n.ID == "":
		err = errors.New("notification ID is empty")
	case validateText(n.ID) != nil:
		err = fmt.Errorf("notification ID: %v", validateText(n.ID))
	case !n.Kind.valid():
		err = fmt.Errorf("notification kind %q is not one of %q", n.Kind, notificationKinds)
	default:
		err = validateUserID(n.UserID)
	}
	if err != nil {
		return &NotifyError{Permanent: true, Err: err}
	}
	return nil
}

// A MessageSender is a Notifier that also returns the provider's message ID,
// which the outbox records. The dispatcher finds the capability by type
// assertion; resendnotify.Notifier has it.
type MessageSender interface {
	Send(ctx context.Context, n Notification) (messageID string, err error)
}

// notice enqueues the notification decision d calls for, unless the user
// already has one of its kind in the window st is in: UpgradePrompt when a
// user on Free is blocked, LimitReached when a paid user is, UsageWarning
// when an allowed user's usage has reached Config.WarnAt on a plan with a
// limit. A block goes only when the user is out (see out): one refused
// because of holds or of its own size sends nothing and leaves the
// period's mark for the block that does. Without a Notifier, blocks are
// still recorded (Funnel counts them) and warnings are not. The state read
// with the decision carries the marks, so a repeat costs no write. A
// failure to enqueue is logged, not returned: the decision stands.
func (g *Gate) notice(ctx context.Context, userID string, plan *Plan, st State, d Decision) {
	if st.fallback {
		return // on Free only because the subscription is unknown: no prompt
	}
	var kind NotificationKind
	switch {
	case !d.Allowed && !out(plan, st):
		return // holds or the estimate are in the way, not usage
	case !d.Allowed && plan == &g.cfg.Free:
		kind = UpgradePrompt
	case !d.Allowed:
		kind = LimitReached
	case d.Warning && plan.Limit > 0 && g.cfg.Notifier != nil:
		kind = UsageWarning
	default:
		return
	}
	if st.Notified.Has(kind) {
		return
	}
	now := g.now()
	n := Notification{
		ID:         notificationID(userID, kind, st.PeriodStart),
		Kind:       kind,
		UserID:     userID,
		Usage:      d.Usage,
		UpgradeURL: g.cfg.UpgradeURL,
		CreatedAt:  now,
	}
	added, err := g.store.Enqueue(ctx, n, st.PeriodStart, g.cfg.Notifier != nil, now)
	if err != nil {
		g.cfg.Logger.ErrorContext(ctx, "freemium: enqueueing a notification failed", "operation", "enqueue",
			"kind", kind, g.UserAttr(userID), "err", err)
		return
	}
	if added {
		g.Observe(ctx, Event{Kind: EventNotificationEnqueued, Notification: kind})
		g.wakeDispatcher()
	}
}

// out reports whether usage alone leaves the user nothing on plan p in
// state s, whatever is held and whatever a request asks: the plan has a
// hard limit that the tokens used have reached, no credits are left, and
// its free first report, if any, is used (a held one may be canceled and
// be free again). Only
// such a user is told that the limit is reached.
func out(p *Plan, s State) bool {
	if p.SoftLimit || p.Limit == Unlimited {
		return false
	}
	if p.FirstReportFree && !s.FirstReportUsed {
		return false
	}
	return s.Used >= p.Limit && s.Credits == 0
}

// notificationID is stable for a user, kind and window, so that every
// attempt at one notification carries one idempotency key.
func notificationID(userID string, kind NotificationKind, windowStart time.Time) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d", userID, kind, windowStart.UnixMicro())
	return "ntf_" + hex.EncodeToString(h.Sum(nil)[:16])
}
