package freemiumtest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/freemiumkit/freemium"
)

// Subscriptions is a fake freemium.SubscriptionChecker backed by a map: set
// and clear users' subscriptions as a billing provider would. It counts
// calls, and can be made to fail. Safe for simultaneous use.
type Subscriptions struct {
	mu    sync.Mutex
	subs  map[string][]freemium.Subscription
	err   error
	calls int
}

var _ freemium.SubscriptionChecker = (*Subscriptions)(nil)

// NewSubscriptions returns a Subscriptions in which nobody has a subscription.
func NewSubscriptions() *Subscriptions {
	return &Subscriptions{subs: map[string][]freemium.Subscription{}}
}

// Set gives the user subs, in place of the subscriptions they had.
func (f *Subscriptions) Set(userID string, subs ...freemium.Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[userID] = subs
}

// Subscribe gives the user an active subscription to priceID for the period
// [start, end), and returns it.
func (f *Subscriptions) Subscribe(userID, priceID string, start, end time.Time) freemium.Subscription {
	sub := freemium.Subscription{
		ID:                 "sub_" + userID,
		CustomerID:         "cus_" + userID,
		PriceIDs:           []string{priceID},
		Status:             freemium.StatusActive,
		CurrentPeriodStart: start,
		CurrentPeriodEnd:   end,
	}
	f.Set(userID, sub)
	return sub
}

// Clear removes the user's subscriptions.
func (f *Subscriptions) Clear(userID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, userID)
}

// SetError makes every call fail with err, until SetError(nil).
func (f *Subscriptions) SetError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// Calls returns how many times Subscriptions was called.
func (f *Subscriptions) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Subscriptions implements freemium.SubscriptionChecker.
func (f *Subscriptions) Subscriptions(ctx context.Context, userID string) ([]freemium.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.err != nil {
		return nil, f.err
	}
	return slices.Clone(f.subs[userID]), nil
}
