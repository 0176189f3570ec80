package freemium

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// TopUp is a pack of tokens a user buys once, for Config.TopUps: a grant
// (see Gate.Grant) made when the payment succeeds.
type TopUp struct {
	// PriceID is the billing provider's one-time price of the pack.
	// Required.
	PriceID string `json:"price_id"`
	// Tokens is what one purchase grants. Required.
	Tokens int64 `json:"tokens"`
	// Validity is how long the tokens last after the purchase. Default 0:
	// until spent.
	Validity time.Duration `json:"-"`
}

// TopUpPayment is a billing provider's payment of a top-up, as
// Gate.ApplyTopUp and Gate.RefundTopUp take it from a webhook or a
// completed checkout.
type TopUpPayment struct {
	// ID is the provider's payment (a Stripe PaymentIntent): the top-up is
	// granted once per ID, and a refund names it. Required.
	ID string
	// PriceID is the top-up's price, one of Config.TopUps (ApplyTopUp).
	PriceID string
	// UserID is the user the payment names (its metadata); "" for none.
	UserID string
	// CustomerID is the provider's customer that paid; "" for none.
	CustomerID string
}

// TopUpCreator is a SubscriptionChecker that can also start the provider's
// checkout of a one-time price. The Gate finds the capability by type
// assertion; stripesub.Checker has it.
type TopUpCreator interface {
	TopUpURL(ctx context.Context, userID, priceID string, p CheckoutParams) (string, error)
}

// ErrUnknownTopUp is returned for a price that is not one of
// Config.TopUps.
var ErrUnknownTopUp = errors.New("freemium: not a top-up's price")

// topUpKey is the key of the grant of a top-up paid by payment.
func topUpKey(payment string) string { return topUpKeyPrefix + payment }

// topUp finds the top-up of priceID.
func (g *Gate) topUp(priceID string) (TopUp, error) {
	for _, t := range g.cfg.TopUps {
		if t.PriceID == priceID {
			return t, nil
		}
	}
	return TopUp{}, fmt.Errorf("%w: %q is in no Config.TopUps", ErrUnknownTopUp, priceID)
}

// TopUpURL returns a link to the provider's checkout page where userID
// buys the top-up of priceID, for a "Buy tokens" button. Call it when the
// user asks, not on every blocked check: each call creates a checkout
// session. The tokens are granted when the provider reports the payment
// (stripesub.WebhookHandler), or at once when the page p.SuccessURL
// returns to calls CompleteCheckout, whichever comes first; once either
// way. Config.Subscriptions must be a TopUpCreator.
func (g *Gate) TopUpURL(ctx context.Context, userID, priceID string, p CheckoutParams) (string, error) {
	if err := validateUserID(userID); err != nil {
		return "", err
	}
	if _, err := g.topUp(priceID); err != nil {
		return "", fmt.Errorf("freemium: TopUpURL: %w", err)
	}
	if p.SuccessURL == "" {
		return "", errors.New("freemium: TopUpURL: CheckoutParams.SuccessURL is empty: give the page the user returns to after paying")
	}
	creator, ok := g.cfg.Subscriptions.(TopUpCreator)
	if !ok {
		return "", fmt.Errorf("freemium: TopUpURL: Config.Subscriptions (%T) cannot create top-up checkouts: use stripesub.New", g.cfg.Subscriptions)
	}
	if err := g.linkedCustomer(ctx, userID, &p); err != nil {
		return "", fmt.Errorf("freemium: top-up for %s: %w", userID, err)
	}
	url, err := creator.TopUpURL(ctx, userID, priceID, p)
	if err != nil {
		return "", fmt.Errorf("freemium: top-up for %s: %w", userID, err)
	}
	return url, nil
}

// ApplyTopUp grants the tokens of a paid top-up to the user it is for:
// the user the payment's customer is linked to, else the user it names
// (whose customer it then becomes). It grants once per payment ID,
// whatever the retries, the order of deliveries and the races (the grant's
// key is the payment's), with the top-up's Validity from now.
//
// Nothing is written, and the error says why, for a price not in
// Config.TopUps (ErrUnknownTopUp), a customer linked to another user than
// the one named (ErrCustomerLinked), and a payment of no known user
// (ErrInvalidUserID). Other errors are the Store's: retry.
func (g *Gate) ApplyTopUp(ctx context.Context, p TopUpPayment) error {
	t, err := g.topUp(p.PriceID)
	if err != nil {
		return fmt.Errorf("freemium: apply top-up: %w", err)
	}
	user, err := g.payer(ctx, p, true)
	if err != nil {
		return err
	}
	var expires time.Time
	if t.Validity > 0 {
		expires = g.now().Add(t.Validity)
	}
	c, err := g.credit(user, t.Tokens, GrantOptions{Key: topUpKey(p.ID), ExpiresAt: expires, Reason: "top-up " + t.PriceID})
	if err != nil {
		return err
	}
	c.TopUp = t.PriceID
	added, err := g.grant(ctx, c)
	if added {
		g.Observe(ctx, Event{Kind: EventTopUp, PriceID: t.PriceID})
	}
	return err
}

// RefundTopUp takes back what is left of a refunded top-up's tokens, as
// RevokeGrant does, and returns how many: the tokens already spent stay
// spent. The user is found as by ApplyTopUp. A refund that comes before
// the payment's grant (deliveries out of order) takes the grant's key, so
// that the grant grants nothing when it comes, and returns 0.
func (g *Gate) RefundTopUp(ctx context.Context, p TopUpPayment) (int64, error) {
	user, err := g.payer(ctx, p, false)
	if err != nil {
		return 0, err
	}
	key := topUpKey(p.ID)
	n, err := g.RevokeGrant(ctx, user, key, "refund")
	if !errors.Is(err, ErrGrantNotFound) {
		return n, err
	}
	if _, err := g.store.Grant(ctx, Credit{UserID: user, Key: key, Reason: "refunded before it was granted"}, g.now()); err != nil {
		return 0, fmt.Errorf("freemium: refund top-up: %w", err)
	}
	// A grant that came meanwhile is the one to revoke.
	return g.RevokeGrant(ctx, user, key, "refund")
}

// payer is the user a top-up payment is for, as ApplyTopUp finds it; link
// links an unlinked customer to the user named.
func (g *Gate) payer(ctx context.Context, p TopUpPayment, link bool) (string, error) {
	if err := validateText(p.ID); err != nil || p.ID == "" {
		return "", fmt.Errorf("freemium: top-up payment ID %q is not valid", p.ID)
	}
	user, linked, err := g.owner(ctx, p.CustomerID, p.UserID, "top-up payment "+p.ID)
	if err != nil {
		return "", err
	}
	if link && p.CustomerID != "" && linked == "" {
		if err := g.store.LinkCustomer(ctx, user, p.CustomerID, g.now()); err != nil {
			return "", fmt.Errorf("freemium: top-up: %w", err)
		}
	}
	return user, nil
}
