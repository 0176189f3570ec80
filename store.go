package freemium

import (
	"context"
	"errors"
	"math"
	"time"
)

// A Store keeps the Gate's state: each user's usage per window, live
// reservations, the first-report flag and recorded idempotency keys. Each
// method is one atomic operation; the Gate never reads and then writes.
//
// Implementations must be safe for simultaneous use by many Gates, in one
// process or several. A Store shared by processes must count a live hold
// until its TTL has passed, whichever process's clock is ahead, and must
// give back exactly a committed or canceled hold's tokens (pgstore.Store
// judges other instances' holds by the database's clock). Gates sharing
// a MemoryStore share the process's clock. Errors are for a backend that failed or a context that
// ended, never for a user over the limit: that is ReserveResult.Admitted.
// Times given to a Store are UTC and whole microseconds.
//
// NewMemoryStore and pgstore.New are the two implementations;
// freemiumtest.RunStoreTests is the suite every implementation must pass.
type Store interface {
	// Usage and holds.

	// Load returns the user's state at now, in the window that window names
	// for the user's Account (its anchor and mirrored subscription). It
	// writes nothing. window is called once, and must not call the Store.
	Load(ctx context.Context, userID string, now time.Time, window func(Account) Window) (State, error)

	// Reserve places hold h if the user's state admits it (see Hold) and
	// the user's mirror is still the one h was decided on (Hold.Mirror),
	// atomically with respect to every other write for the user. It returns
	// the state as it was before the hold. The first write for a user
	// (Reserve, admitted or not, unless the mirror moved; Record or
	// MarkFirstReportUsed) fixes the user's anchor at its now.
	Reserve(ctx context.Context, h Hold, now time.Time) (ReserveResult, error)

	// Commit records tokens as used in the window of hold h and ends the
	// hold; a first-report hold marks the first report used. In the same
	// atomic step it spends SpendFromGrants(Limit of the hold, the
	// window's usage before, tokens) from the user's grants live at now,
	// as far as they go, earliest expiry first (no expiry last, then
	// oldest first), with a LedgerSpend entry per grant. It records a
	// held, expired or canceled hold alike. Committing a committed hold
	// does nothing. An unknown ID, a hold of another user than h.UserID,
	// or a hold more than HoldRetention past its expiry at now, is
	// ErrReservationNotFound, and nothing is written.
	Commit(ctx context.Context, h HoldRef, tokens int64, now time.Time) error

	// Cancel ends a held hold without recording usage, giving back its tokens
	// and its first-report claim. Canceling a hold that is no longer held
	// does nothing. Holds are found as by Commit.
	Cancel(ctx context.Context, h HoldRef, now time.Time) error

	// Record adds tokens to the user's usage in window w at now, and
	// spends from grants as Commit does for a hold of limit. A non-empty
	// key is recorded once per user: a later Record with the same key,
	// even a racing one, does nothing.
	Record(ctx context.Context, userID string, w Window, limit, tokens int64, key string, now time.Time) error

	// MarkFirstReportUsed sets the user's first-report flag.
	MarkFirstReportUsed(ctx context.Context, userID string, now time.Time) error

	// Credits.

	// Grant adds grant c, with its LedgerGrant entry at now, unless the
	// user has a grant with c.Key: then it writes nothing and reports
	// false. A Credit of 0 tokens takes the key (a later grant with it
	// adds nothing) without a ledger entry. Load and Reserve report the grants live at their now in
	// State.Credits. It does not anchor the user.
	Grant(ctx context.Context, c Credit, now time.Time) (bool, error)

	// Revoke takes what is left of the user's grant with key, if it is
	// live at now, out of the credits, with a LedgerRevoke entry of the
	// tokens revoked, and returns them (0 for a grant spent, expired or
	// revoked). A key the user has no grant with is ErrGrantNotFound.
	Revoke(ctx context.Context, userID, key, reason string, now time.Time) (int64, error)

	// Adjust adds tokens, or takes them off when negative (never below
	// zero), to the user's usage in window w at now, with a LedgerAdjust
	// entry of the change made; once per user and key (a namespace of its
	// own, not Record's): a later Adjust with the key does nothing and
	// reports false. It spends no grant.
	Adjust(ctx context.Context, userID string, w Window, tokens int64, key, reason string, now time.Time) (bool, error)

	// TopUps returns the grants with a TopUp made in [from, to), oldest
	// first.
	TopUps(ctx context.Context, from, to time.Time) ([]TopUpRecord, error)

	// Ledger returns the user's ledger entries with At in [from, to),
	// oldest first: those written, and for each grant whose expiry is
	// before or at now with tokens left, a LedgerExpire entry of them at
	// its expiry (reason ExpireReason).
	Ledger(ctx context.Context, userID string, from, to, now time.Time) ([]LedgerEntry, error)

	// The subscription mirror, customer links and conversions.

	// PutSubscriptions applies news of the user's subscriptions to the
	// mirror, as SubscriptionMirror.Apply decides, atomically with respect
	// to every other write of the mirror, and reports whether it wrote.
	// When Apply reports a conversion it records it (at u.SyncedAt for a
	// pull, u.AsOf for an event) in the same atomic step, and reports that
	// too. It does not anchor the user: a mirror is not activity.
	PutSubscriptions(ctx context.Context, userID string, u SubscriptionUpdate, now time.Time) (changed, converted bool, err error)

	// LinkCustomer links the billing provider's customer to the user: it
	// becomes the user's customer, and CustomerUser finds the user by it.
	// It marks the user's mirror for refresh (SyncedAt zero, and the next
	// Version), since the link is news about the user's subscription. A customer linked to
	// another user is ErrCustomerLinked, and nothing is written.
	LinkCustomer(ctx context.Context, userID, customerID string, now time.Time) error

	// CustomerUser returns the user the customer is linked to, "" for none.
	CustomerUser(ctx context.Context, customerID string) (string, error)

	// Conversions returns the recorded conversions with At in [from, to),
	// oldest first.
	Conversions(ctx context.Context, from, to time.Time) ([]Conversion, error)

	// The notification outbox.

	// Enqueue marks n.Kind as notified for n.UserID's window starting at
	// windowStart and, when the mark is new, adds n to the outbox:
	// pending when deliver is set (due at now), recorded but never
	// delivered otherwise. Of any number of racing Enqueues of one kind for
	// one user and window, exactly one adds. It reports whether it added.
	// Load and Reserve report the marks in State.Notified.
	Enqueue(ctx context.Context, n Notification, windowStart time.Time, deliver bool, now time.Time) (bool, error)

	// ClaimNotifications claims up to limit pending notifications due at
	// now, and makes them due again at now+lease, so that a
	// dispatcher that dies mid-send leaves them to another. Concurrent
	// claims, in one process or many, never return the same notification
	// before its lease ends.
	ClaimNotifications(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Outbound, error)

	// FinishNotification records the outcome of a delivery attempt of a
	// claimed notification: sent, failed for good, or pending again at
	// Retry. It counts the attempt. An outcome whose Claim is no longer the
	// notification's (the lease ended and another dispatcher claimed it, or
	// it is no longer pending), or for an unknown ID, writes nothing.
	FinishNotification(ctx context.Context, id string, o Outcome, now time.Time) error

	// Notifications returns the notifications created in [from, to),
	// oldest first.
	Notifications(ctx context.Context, from, to time.Time) ([]NotificationRecord, error)
}

// NotifiedKinds is for Store implementers: a set of notification kinds, as
// a Store keeps them per user and window.
type NotifiedKinds uint8

// kindBit is k's bit in NotifiedKinds; 0 for an unknown kind.
func kindBit(k NotificationKind) NotifiedKinds {
	for i, known := range notificationKinds {
		if k == known {
			return 1 << i
		}
	}
	return 0
}

// Has reports whether k is in the set.
func (s NotifiedKinds) Has(k NotificationKind) bool { return s&kindBit(k) != 0 }

// With returns the set with k added.
func (s NotifiedKinds) With(k NotificationKind) NotifiedKinds { return s | kindBit(k) }

// Outbound is for Store implementers: a claimed notification, to deliver.
type Outbound struct {
	Notification
	Attempts     int       // delivery attempts before this one
	ClaimedUntil time.Time // the claim's end: Outcome.Claim
}

// Outcome is for Store implementers: the result of one delivery attempt.
type Outcome struct {
	State     DeliveryState // Sent, Failed, or Pending to retry
	MessageID string        // the provider's, when Sent and known
	Retry     time.Time     // when Pending: when it is due again
	Error     string        // when not Sent: why; kept for operators
	Claim     time.Time     // the Outbound.ClaimedUntil it was made under
}

// DeliveryState is for Store implementers: where a notification is in the
// outbox.
type DeliveryState string

// The delivery states.
const (
	DeliveryPending DeliveryState = "pending" // to be sent
	DeliverySent    DeliveryState = "sent"
	DeliveryFailed  DeliveryState = "failed"   // given up
	DeliveryNone    DeliveryState = "recorded" // recorded for the funnel; no Notifier was configured
)

// NotificationRecord is for Store implementers: a notification as the
// outbox keeps it.
type NotificationRecord struct {
	Notification
	State     DeliveryState
	Attempts  int
	MessageID string
	SentAt    time.Time // zero unless sent
	LastError string
}

// Account is for Store implementers: what a Store knows of a user besides
// usage, as Load passes it to its window function.
type Account struct {
	// Anchor is the user's first activity (Reserve, Record or
	// MarkFirstReportUsed); zero for a user without any.
	Anchor time.Time
	// CustomerID is the billing provider's customer last linked to the user.
	CustomerID string
	// Subscriptions is the mirror of the user's subscriptions; zero when
	// never mirrored.
	Subscriptions SubscriptionMirror
}

// Conversion is for Store implementers: a user's change from Free to a
// paid plan, as the Store records it for Gate.Funnel.
type Conversion struct {
	UserID string    `json:"user_id"`
	Plan   string    `json:"plan"` // the paid plan
	At     time.Time `json:"at"`   // when it was seen: the event's time, or the fetch's
}

// ErrCustomerLinked is returned when linking a customer that is linked to
// another user.
var ErrCustomerLinked = errors.New("freemium: customer is linked to another user")

// Window is for Store implementers: the usage period a Store counts in.
// Either Every is positive: consecutive windows of that length, anchored at
// the user's anchor in the Store (now, for a user the Store has not seen);
// or the window is [Start, End).
type Window struct {
	Start, End time.Time     // a fixed window, when Every is 0
	Every      time.Duration // the length of rolling windows
}

// Bounds resolves w for a user anchored at anchor (zero: none yet) at now.
// Stores use it for Every windows. A time before the anchor, which a clock
// a little behind the one that anchored the user can give, is in the first
// window: no window comes before a user's first activity.
func (w Window) Bounds(anchor, now time.Time) (start, end time.Time) {
	if w.Every <= 0 {
		return w.Start, w.End
	}
	if anchor.IsZero() {
		anchor = now
	} else if now.Before(anchor) {
		now = anchor
	}
	start = anchor.Add(now.Sub(anchor) / w.Every * w.Every)
	return start, start.Add(w.Every)
}

// EndOf returns the end of the window that a Store resolved to start: for
// an Every window, start plus its length; for a fixed window, End.
func (w Window) EndOf(start time.Time) time.Time {
	if w.Every > 0 {
		return start.Add(w.Every)
	}
	return w.End
}

// State is for Store implementers: a user's state in one window.
type State struct {
	PeriodStart, PeriodEnd time.Time // the resolved window
	Used                   int64     // tokens recorded in the window
	Reserved               int64     // tokens of live holds, whatever their window
	FirstReportUsed        bool
	FirstReportHeld        bool          // a live hold has claimed the first report
	Credits                int64         // tokens left in the user's grants live at now
	CreditsExpire          time.Time     // the earliest expiry of those grants; zero when none expires
	Notified               NotifiedKinds // kinds enqueued for the user in the window
	Account                Account       // what the window function was given

	// Set by the Gate, not by Stores: a refresh of the mirror failed in
	// this request, and (fallback) the state is on Free by
	// Config.SubscriptionFallback rather than by the user's subscription.
	refreshFailed, fallback bool
}

// Hold is for Store implementers: a request to set tokens aside for a user
// until ExpiresAt.
//
// The admission rule, which every Store applies atomically: when FirstReport
// is set and the user's first report is neither used nor held, the hold is
// admitted as the first report, whatever its size. Otherwise it is admitted
// when Limit is Unlimited or Used+Reserved+Tokens <= Limit.
type Hold struct {
	ID          string    // unique; sorts by creation time
	UserID      string    // whose tokens
	Window      Window    // the window the tokens count in, when committed
	Tokens      int64     // the estimate held
	Limit       int64     // the window's cap, or Unlimited
	FirstReport bool      // the plan gives a free first report
	ExpiresAt   time.Time // when the hold stops counting
	// Mirror, when not zero, is the SubscriptionMirror.Version the Gate
	// decided the plan (Window, Limit, FirstReport) on. A Store places the
	// hold only while the user's mirror has that Version; otherwise it
	// writes nothing and reports ReserveResult.MirrorMoved, and the Gate
	// decides again on the mirror as it is.
	Mirror int64
}

// HoldRef is for Store implementers: it names a hold for Store.Commit and
// Store.Cancel: its ID and its user. A hold whose user is not UserID is not
// found (an ID alone does not reach a hold, so that a leaked ID cannot bill
// another user). The caller that placed the hold (a Reservation) also gives
// whether it was admitted as the first report, as Hold.Ref makes it, so that
// a Store can go straight to the user's account without looking the hold up
// by ID. A Store decides by its own record of the hold: a FirstReport that
// disagrees with it may cost a slower path, never a different answer.
type HoldRef struct {
	ID          string
	UserID      string // the hold's user
	FirstReport bool   // admitted as the first report
}

// Ref is the HoldRef of h, placed as r reports.
func (h Hold) Ref(r ReserveResult) HoldRef {
	return HoldRef{ID: h.ID, UserID: h.UserID, FirstReport: r.FirstReport}
}

// ReserveResult is for Store implementers: what Store.Reserve did.
type ReserveResult struct {
	State       State // before the hold
	Admitted    bool
	FirstReport bool // admitted as the first report
	MirrorMoved bool // the mirror is no longer Hold.Mirror: nothing was written
}

// Admit applies the admission rule to state s. Stores written in Go call it
// under their lock.
func (h Hold) Admit(s State) (admitted, firstReport bool) {
	if h.FirstReport && !s.FirstReportUsed && !s.FirstReportHeld {
		return true, true
	}
	if h.Limit == Unlimited {
		return true, false
	}
	return addSat(addSat(s.Used, s.Reserved), h.Tokens) <= room(h.Limit, s.Used, s.Credits), false
}

// room is how far usage may go in a window with allowance limit, usage
// used and credits.
func room(limit, used, credits int64) int64 {
	if credits <= 0 {
		return limit
	}
	return addSat(max(limit, used), credits)
}

// HoldRetention is for Store implementers: how long after it expires a
// Store keeps a hold, so that a late Commit still records and a repeated
// one is still recognized.
const HoldRetention = 24 * time.Hour

// ErrReservationNotFound is returned for a reservation ID the Store does not
// know: never issued, or more than HoldRetention past its expiry.
var ErrReservationNotFound = errors.New("freemium: reservation not found")

// addSat adds two non-negative counts, stopping at math.MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
