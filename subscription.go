package freemium

import (
	"context"
	"errors"
	"fmt"
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

// CheckoutParams shapes the checkout page of Gate.CheckoutURL.
type CheckoutParams struct {
	// SuccessURL is where the provider sends the user after paying; a good
	// place to call Gate.Refresh once it exists, or to show the new plan.
	// Stripe replaces {CHECKOUT_SESSION_ID} in it. Required.
	SuccessURL string
	// CancelURL is where the user goes back to without paying. Default: none.
	CancelURL string
	// Email prefills the email of a user who is not a customer yet. Default "".
	Email string
	// AllowPromotionCodes lets the user enter a promotion code. Default false.
	AllowPromotionCodes bool
	// TrialDays starts the subscription with a free trial. Default 0: none.
	TrialDays int64
}

// A CheckoutCreator is a SubscriptionChecker that can also start the
// provider's checkout for a user and a price. The Gate finds the capability
// by type assertion; StripeSubscriptions has it.
type CheckoutCreator interface {
	CheckoutURL(ctx context.Context, userID, priceID string, p CheckoutParams) (string, error)
}

// CheckoutURL returns a link to the provider's checkout page that
// subscribes userID to priceID, for an upgrade button. Call it when the user
// asks to upgrade, not on every blocked check: each call creates a checkout
// session. The price must place a subscriber on one of Config.Plans, and
// Config.Subscriptions must be a CheckoutCreator.
func (g *Gate) CheckoutURL(ctx context.Context, userID, priceID string, p CheckoutParams) (string, error) {
	if err := validateUserID(userID); err != nil {
		return "", err
	}
	if _, ok := g.byPrice[priceID]; !ok && g.catchAll < 0 {
		return "", fmt.Errorf("freemium: CheckoutURL: price %q is in no plan's PriceIDs: a subscriber to it would stay on Free", priceID)
	}
	if p.SuccessURL == "" {
		return "", errors.New("freemium: CheckoutURL: CheckoutParams.SuccessURL is empty: give the page the user returns to after paying")
	}
	creator, ok := g.cfg.Subscriptions.(CheckoutCreator)
	if !ok {
		return "", fmt.Errorf("freemium: CheckoutURL: Config.Subscriptions (%T) cannot create checkouts: use NewStripeSubscriptions", g.cfg.Subscriptions)
	}
	url, err := creator.CheckoutURL(ctx, userID, priceID, p)
	if err != nil {
		return "", fmt.Errorf("freemium: checkout for %s: %w", userID, err)
	}
	return url, nil
}
