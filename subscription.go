package freemium

import (
	"context"
	"time"
)

// SubscriptionChecker reports users' subscriptions with the billing provider.
// Implementations must be safe for simultaneous use.
type SubscriptionChecker interface {
	// Subscription returns the user's current subscription. A zero
	// Subscription (Status "") means the user has none; an error means the
	// answer is unknown.
	Subscription(ctx context.Context, userID string) (Subscription, error)
}

// Subscription is a user's subscription as the billing provider sees it.
type Subscription struct {
	ID         string             // the provider's subscription ID
	CustomerID string             // the provider's customer ID
	PriceID    string             // the price that places the user on a plan
	Status     SubscriptionStatus // "": no subscription

	// CurrentPeriodStart and CurrentPeriodEnd bound the billing period, the
	// window of BillingCycle plans.
	CurrentPeriodStart, CurrentPeriodEnd time.Time
	CancelAtPeriodEnd                    bool // the subscription ends with the period
}

// SubscriptionStatus is a subscription's status, with Stripe's names.
type SubscriptionStatus string

// The subscription statuses. Active and Trialing place a user on a paid plan.
const (
	StatusActive            SubscriptionStatus = "active"
	StatusTrialing          SubscriptionStatus = "trialing"
	StatusPastDue           SubscriptionStatus = "past_due"
	StatusCanceled          SubscriptionStatus = "canceled"
	StatusUnpaid            SubscriptionStatus = "unpaid"
	StatusIncomplete        SubscriptionStatus = "incomplete"
	StatusIncompleteExpired SubscriptionStatus = "incomplete_expired"
	StatusPaused            SubscriptionStatus = "paused"
)

// Subscribed reports whether the status places a user on a paid plan.
func (s SubscriptionStatus) Subscribed() bool {
	return s == StatusActive || s == StatusTrialing
}

// subscription asks the configured checker; without one nobody has a subscription.
func (g *Gate) subscription(ctx context.Context, userID string) (Subscription, error) {
	if g.cfg.Subscriptions == nil {
		return Subscription{}, nil
	}
	return g.cfg.Subscriptions.Subscription(ctx, userID)
}

// planFor places a subscription on a plan: a subscribed status and a price
// one plan lists put the user on that plan; a subscribed status and any other
// price, on the plan without PriceIDs if there is one; everything else, on
// Free. A subscribed price no plan takes is logged, and the user is on Free.
func (g *Gate) planFor(ctx context.Context, userID string, sub Subscription) *Plan {
	if !sub.Status.Subscribed() {
		return &g.cfg.Free
	}
	if i, ok := g.byPrice[sub.PriceID]; ok {
		return &g.cfg.Plans[i]
	}
	if g.catchAll >= 0 {
		return &g.cfg.Plans[g.catchAll]
	}
	g.cfg.Logger.WarnContext(ctx, "freemium: subscription price matches no plan; user is on the free plan",
		"user_id", userID, "subscription_id", sub.ID, "price_id", sub.PriceID)
	return &g.cfg.Free
}
