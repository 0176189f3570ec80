package freemium

import (
	"slices"
	"time"
)

// SubscriptionMirror is for Store implementers: what a Store keeps of a
// user's subscriptions, so that checks need not ask the billing provider:
// each subscription it has news of, each as of its own news. An event about
// one subscription never undoes news of another, so a second subscription
// (an add-on, a double checkout) neither hides nor ends the one that places
// the user on a plan. Stores change it only through Apply.
type SubscriptionMirror struct {
	// Subscriptions are the subscriptions that may give access, and those
	// that ended since the last pull (kept so that an older event cannot
	// bring them back), in no particular order. Read-only: Apply returns a
	// new slice.
	Subscriptions []MirroredSubscription

	// PulledAsOf is the AsOf of the last pull applied; zero when never
	// pulled. An event older than it about a subscription the mirror does
	// not hold is stale: the pull saw what came after.
	PulledAsOf time.Time

	// SyncedAt is when the mirror was last confirmed from the provider.
	// Zero: never, or marked for refresh by LinkCustomer.
	SyncedAt time.Time

	// Version counts the Store's writes of the mirror: Apply's next mirror
	// has the Version after m's, and LinkCustomer adds one too. Zero: never
	// written. A Hold decided on a mirror names its Version (Hold.Mirror).
	Version int64
}

// MirroredSubscription is for Store implementers: one subscription in a
// SubscriptionMirror.
type MirroredSubscription struct {
	Subscription

	// AsOf is the provider's time this news reflects: the event's creation
	// time for a webhook; for a pull, the start of the fetch to the second,
	// less two seconds (events of those seconds supersede it).
	AsOf time.Time

	// PaidPlan is the paid plan this subscription placed the user on when it
	// was written, "" for none. It marks conversions.
	PaidPlan string

	// WasPaid is set when this news, without a PaidPlan, replaced news of
	// the subscription with one: the user was on a paid plan until AsOf.
	WasPaid bool
}

// SubscriptionUpdate is for Store implementers: news of a user's
// subscriptions, for
// Store.PutSubscriptions.
type SubscriptionUpdate struct {
	// Subscriptions: for a pull, every subscription of the user; for an
	// event, the one it carries.
	Subscriptions []MirroredSubscription

	Pulled   bool      // fetched from the provider rather than taken from an event
	AsOf     time.Time // as MirroredSubscription.AsOf; Apply stamps it on each subscription
	SyncedAt time.Time // when it was received

	// PaidPlan is the paid plan the update's subscriptions place the user
	// on, "" for Free: the plan of the conversion it may record.
	PaidPlan string
}

// Apply returns the mirror with u applied, whether u changed it, and
// whether the change is a conversion. Stores call it atomically with their
// write (under a lock, or on a row locked for update).
//
// An event replaces the held news of its subscription when it is newer, or
// as new and winning the tie (Stripe stamps events to the second and
// delivers them out of order): an ended subscription stays ended; else the
// more entitling status wins (created incomplete and active within one
// second). News of a subscription the mirror does not hold is added when it
// is newer than the last pull (which saw everything up to its AsOf). A pull
// older than the last pull, or of the same second and begun earlier
// (SyncedAt), changes nothing; otherwise it replaces the mirror, but keeps
// the news of events newer than itself, and drops the subscriptions that
// give no access.
//
// A conversion is a write that leaves some subscription with a PaidPlan
// where none had one, over a mirror that held news before (a subscriber
// seen for the first time did not convert here), unless a subscription was
// paid after the write's time (WasPaid): events of a move from one paid
// plan to another, delivered out of order, are no conversion.
func (m SubscriptionMirror) Apply(u SubscriptionUpdate) (next SubscriptionMirror, changed, converted bool) {
	if u.Pulled {
		if u.AsOf.Before(m.PulledAsOf) || u.AsOf.Equal(m.PulledAsOf) && u.SyncedAt.Before(m.SyncedAt) {
			return m, false, false // an older fetch, or one of the same second that began earlier
		}
		next = SubscriptionMirror{PulledAsOf: u.AsOf, SyncedAt: u.SyncedAt}
		for _, s := range u.Subscriptions {
			s.AsOf = u.AsOf
			if held, ok := m.find(s.ID); ok && held.AsOf.After(u.AsOf) {
				s = held
			}
			if s.AsOf.After(u.AsOf) || statusRank(s.Status) > 0 {
				next.Subscriptions = append(next.Subscriptions, s)
			}
		}
		for _, held := range m.Subscriptions {
			if !slices.ContainsFunc(u.Subscriptions, func(s MirroredSubscription) bool { return s.ID == held.ID }) &&
				held.AsOf.After(u.AsOf) {
				next.Subscriptions = append(next.Subscriptions, held)
			}
		}
	} else {
		next = SubscriptionMirror{Subscriptions: slices.Clone(m.Subscriptions), PulledAsOf: m.PulledAsOf, SyncedAt: u.SyncedAt}
		for _, s := range u.Subscriptions {
			s.AsOf = u.AsOf
			i := slices.IndexFunc(next.Subscriptions, func(held MirroredSubscription) bool { return held.ID == s.ID })
			switch {
			case i < 0 && u.AsOf.After(m.PulledAsOf):
				next.Subscriptions = append(next.Subscriptions, s)
				changed = true
			case i >= 0 && (u.AsOf.After(next.Subscriptions[i].AsOf) ||
				u.AsOf.Equal(next.Subscriptions[i].AsOf) && winsTie(s.Status, next.Subscriptions[i].Status)):
				s.WasPaid = s.PaidPlan == "" && (next.Subscriptions[i].PaidPlan != "" || next.Subscriptions[i].WasPaid)
				next.Subscriptions[i] = s
				changed = true
			}
		}
		if !changed {
			return m, false, false
		}
	}
	next.Version = m.Version + 1
	paidLater := slices.ContainsFunc(m.Subscriptions, func(s MirroredSubscription) bool { return s.WasPaid && s.AsOf.After(u.AsOf) })
	return next, true, m.held() && !m.paid() && next.paid() && !paidLater
}

// winsTie reports whether news of a subscription with status s replaces
// held news of it with status held from the same second: an ended
// subscription stays ended (Stripe never revives one); otherwise the more
// entitling status wins (created incomplete, active within the second).
func winsTie(s, held SubscriptionStatus) bool {
	if ended(s) || ended(held) {
		return ended(s)
	}
	return statusRank(s) >= statusRank(held)
}

// ended reports whether a subscription with status s is over for good.
func ended(s SubscriptionStatus) bool {
	return s == StatusCanceled || s == StatusIncompleteExpired
}

// find returns the held news of subscription id.
func (m SubscriptionMirror) find(id string) (MirroredSubscription, bool) {
	i := slices.IndexFunc(m.Subscriptions, func(s MirroredSubscription) bool { return s.ID == id })
	if i < 0 {
		return MirroredSubscription{}, false
	}
	return m.Subscriptions[i], true
}

// held reports whether the mirror holds news: it was pulled, or an event
// was applied.
func (m SubscriptionMirror) held() bool {
	return len(m.Subscriptions) > 0 || !m.PulledAsOf.IsZero()
}

// paid reports whether a subscription placed the user on a paid plan when
// it was written.
func (m SubscriptionMirror) paid() bool {
	return slices.ContainsFunc(m.Subscriptions, func(s MirroredSubscription) bool { return s.PaidPlan != "" })
}
