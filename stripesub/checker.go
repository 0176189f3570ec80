package stripesub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	checkoutsession "github.com/stripe/stripe-go/v76/checkout/session"
	"github.com/stripe/stripe-go/v76/customer"
	"github.com/stripe/stripe-go/v76/subscription"

	"github.com/freemiumkit/freemium"
)

// Config configures a Checker.
type Config struct {
	// APIKey is the Stripe secret key. Required.
	APIKey string

	// BackendURL is the Stripe API's base URL, for a local stripe-mock or a
	// proxy. Default: Stripe's API.
	BackendURL string

	// HTTPClient makes the requests. Default: a client with a 5s timeout.
	HTTPClient *http.Client

	// CustomerID returns the user's Stripe customer ID, "" for none. When
	// set, it is the only way customers are found: it replaces both the
	// link the Gate keeps (Gate.LinkCustomer, checkouts) and the search.
	// Default nil.
	CustomerID func(ctx context.Context, userID string) (string, error)

	// SearchCustomers finds a user's customer with a Customer Search on the
	// metadata key MetadataKey, when CustomerID is nil and the Gate knows
	// no customer of the user. Stripe's search index lags writes by up to a
	// minute. Default false: a user the Gate has not linked to a customer
	// has no subscription.
	SearchCustomers bool

	// MetadataKey is the metadata key that holds the user ID: on customers
	// for SearchCustomers, and on the checkout sessions and subscriptions
	// that CheckoutURL creates, which the webhook handler reads.
	// Default "user_id".
	MetadataKey string
}

// Checker is a SubscriptionChecker that asks Stripe, through
// stripe-go (API version 2023-10-16). Every call reaches Stripe, with at
// most one retry; the Gate calls it only to refresh its mirror. Safe for
// simultaneous use.
type Checker struct {
	subs        subscription.Client
	sessions    checkoutsession.Client
	customers   customer.Client
	customerID  func(ctx context.Context, userID string) (string, error) // the host's, or nil
	search      bool
	metadataKey string
}

var (
	_ freemium.SubscriptionChecker = (*Checker)(nil)
	_ freemium.CustomerChecker     = (*Checker)(nil)
	_ freemium.CheckoutCreator     = (*Checker)(nil)
	_ freemium.CheckoutReader      = (*Checker)(nil)
)

// New returns a Checker for cfg, or an error
// that names the missing field.
func New(cfg Config) (*Checker, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("stripesub: Config.APIKey is empty: set the Stripe secret key")
	}
	if cfg.MetadataKey == "" {
		cfg.MetadataKey = "user_id"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	backend := &stripe.BackendConfig{
		HTTPClient:        cfg.HTTPClient,
		MaxNetworkRetries: stripe.Int64(1),
		// Errors are returned, not logged: the host decides what to log.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if cfg.BackendURL != "" {
		backend.URL = stripe.String(strings.TrimSuffix(cfg.BackendURL, "/"))
	}
	api := stripe.GetBackendWithConfig(stripe.APIBackend, backend)
	s := &Checker{
		subs:        subscription.Client{B: api, Key: cfg.APIKey},
		sessions:    checkoutsession.Client{B: api, Key: cfg.APIKey},
		customers:   customer.Client{B: api, Key: cfg.APIKey},
		customerID:  cfg.CustomerID,
		search:      cfg.SearchCustomers,
		metadataKey: cfg.MetadataKey,
	}
	return s, nil
}

// customer finds the user's customer: by the host's function when there is
// one, else the one the Gate linked (known), else by search when enabled.
func (s *Checker) customer(ctx context.Context, userID, known string) (string, error) {
	switch {
	case s.customerID != nil:
		return s.customerID(ctx, userID)
	case known != "" || !s.search:
		return known, nil
	}
	return s.searchCustomer(ctx, userID)
}

// Subscriptions implements SubscriptionChecker: every subscription, with
// every item, of the customer found by Config.CustomerID or the
// search, page after page.
func (s *Checker) Subscriptions(ctx context.Context, userID string) ([]freemium.Subscription, error) {
	return s.CustomerSubscriptions(ctx, userID, "")
}

// CustomerSubscriptions implements CustomerChecker: Subscriptions, for a
// user whose customer the Gate knows (customerID, "" for none). The host's
// Config.CustomerID, when set, still decides.
func (s *Checker) CustomerSubscriptions(ctx context.Context, userID, customerID string) ([]freemium.Subscription, error) {
	customerID, err := s.customer(ctx, userID, customerID)
	if err != nil {
		return nil, fmt.Errorf("stripe customer of the user: %w", err)
	}
	if customerID == "" {
		return nil, nil
	}
	params := &stripe.SubscriptionListParams{Customer: stripe.String(customerID), Status: stripe.String("all")}
	params.Context = ctx
	params.Limit = stripe.Int64(100) // Stripe's largest page
	var subs []freemium.Subscription
	it := s.subs.List(params)
	for it.Next() {
		subs = append(subs, fromStripe(it.Subscription()))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("stripe subscriptions of %s: %w", customerID, err)
	}
	return subs, nil
}

// CheckoutURL implements CheckoutCreator: a Stripe Checkout Session in
// subscription mode for one unit of priceID, with client_reference_id set to
// the user (the checkout.session.completed event carries it back), on the
// user's customer when one is found, and user_id in the session's and the
// subscription's metadata.
func (s *Checker) CheckoutURL(ctx context.Context, userID, priceID string, p freemium.CheckoutParams) (string, error) {
	return s.session(ctx, userID, priceID, p, stripe.CheckoutSessionModeSubscription, func(params *stripe.CheckoutSessionParams) {
		params.SubscriptionData = &stripe.CheckoutSessionSubscriptionDataParams{
			Metadata: map[string]string{s.metadataKey: userID},
		}
		if p.TrialDays > 0 {
			params.SubscriptionData.TrialPeriodDays = stripe.Int64(p.TrialDays)
		}
	})
}

// TopUpURL implements freemium.TopUpCreator: a Stripe Checkout Session in
// payment mode for one unit of the one-time priceID, with
// client_reference_id set to the user, user_id and the price (under
// topUpPriceKey) in the session's metadata, user_id in the payment's, and
// a customer: the user's when one is found, else a new one, so that a
// refund of the charge finds the user by its customer.
func (s *Checker) TopUpURL(ctx context.Context, userID, priceID string, p freemium.CheckoutParams) (string, error) {
	return s.session(ctx, userID, priceID, p, stripe.CheckoutSessionModePayment, func(params *stripe.CheckoutSessionParams) {
		params.Metadata[topUpPriceKey] = priceID
		params.PaymentIntentData = &stripe.CheckoutSessionPaymentIntentDataParams{
			Metadata: map[string]string{s.metadataKey: userID},
		}
		if params.Customer == nil {
			params.CustomerCreation = stripe.String(string(stripe.CheckoutSessionCustomerCreationAlways))
		}
	})
}

// session creates a Checkout Session in mode for one unit of priceID,
// naming the user in client_reference_id and the metadata, on the user's
// customer when one is found (else with p.Email), and returns its URL.
// mode's own parameters are set by more.
func (s *Checker) session(ctx context.Context, userID, priceID string, p freemium.CheckoutParams, mode stripe.CheckoutSessionMode,
	more func(*stripe.CheckoutSessionParams)) (string, error) {
	customerID, err := s.customer(ctx, userID, p.CustomerID)
	if err != nil {
		return "", fmt.Errorf("stripe customer of the user: %w", err)
	}
	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(mode)),
		LineItems:         []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(priceID), Quantity: stripe.Int64(1)}},
		ClientReferenceID: stripe.String(userID),
		SuccessURL:        stripe.String(p.SuccessURL),
		Metadata:          map[string]string{s.metadataKey: userID},
	}
	params.Context = ctx
	switch {
	case customerID != "":
		params.Customer = stripe.String(customerID)
	case p.Email != "":
		params.CustomerEmail = stripe.String(p.Email)
	}
	if p.CancelURL != "" {
		params.CancelURL = stripe.String(p.CancelURL)
	}
	if p.AllowPromotionCodes {
		params.AllowPromotionCodes = stripe.Bool(true)
	}
	more(params)
	session, err := s.sessions.New(params)
	if err != nil {
		return "", err
	}
	if session.URL == "" {
		return "", fmt.Errorf("stripe checkout session %s has no URL", session.ID)
	}
	return session.URL, nil
}

// topUpPriceKey is the metadata key of a top-up session's price.
const topUpPriceKey = "freemium_top_up"

// CheckoutSession implements CheckoutReader: the session's
// client_reference_id and customer, once it is complete, for a session
// CheckoutURL or TopUpURL made (its metadata names the same user); for a
// top-up, its price and payment, and whether it is paid.
func (s *Checker) CheckoutSession(ctx context.Context, sessionID string) (freemium.CompletedCheckout, error) {
	params := &stripe.CheckoutSessionParams{}
	params.Context = ctx
	cs, err := s.sessions.Get(sessionID, params)
	if err != nil {
		return freemium.CompletedCheckout{}, err
	}
	if cs.Status != stripe.CheckoutSessionStatusComplete {
		return freemium.CompletedCheckout{}, fmt.Errorf("stripe checkout session %s is %q, not complete", sessionID, cs.Status)
	}
	c, ok := completed(cs, s.metadataKey)
	if !ok {
		// A client_reference_id alone can come from anyone's Payment Link.
		return freemium.CompletedCheckout{}, fmt.Errorf("stripe checkout session %s was not made by CheckoutURL or TopUpURL", sessionID)
	}
	return c, nil
}

// completed reads a session that CheckoutURL or TopUpURL made: they name
// the user twice, in client_reference_id and in the metadata under key. It
// reports false for any other session.
func completed(cs *stripe.CheckoutSession, key string) (freemium.CompletedCheckout, bool) {
	user := cs.ClientReferenceID
	if user == "" || cs.Metadata[key] != user {
		return freemium.CompletedCheckout{}, false
	}
	c := freemium.CompletedCheckout{UserID: user}
	if cs.Customer != nil {
		c.CustomerID = cs.Customer.ID
	}
	switch cs.Mode {
	case stripe.CheckoutSessionModeSubscription:
		return c, c.CustomerID != ""
	case stripe.CheckoutSessionModePayment:
		c.TopUpPrice = cs.Metadata[topUpPriceKey]
		if cs.PaymentIntent != nil {
			c.PaymentID = cs.PaymentIntent.ID
		}
		switch cs.PaymentStatus {
		case stripe.CheckoutSessionPaymentStatusPaid:
			c.Paid = c.PaymentID != ""
		case stripe.CheckoutSessionPaymentStatusNoPaymentRequired:
			// A promotion code took the whole price: no payment, so
			// nothing to refund; the session names the grant.
			c.Paid, c.PaymentID = true, cs.ID
		}
		return c, c.TopUpPrice != ""
	}
	return freemium.CompletedCheckout{}, false
}

// searchCustomer finds the customer whose metadata names the user.
func (s *Checker) searchCustomer(ctx context.Context, userID string) (string, error) {
	params := &stripe.CustomerSearchParams{}
	params.Context = ctx
	params.Query = fmt.Sprintf("metadata['%s']:'%s'", searchEscape(s.metadataKey), searchEscape(userID))
	params.Limit = stripe.Int64(1)
	it := s.customers.Search(params)
	if it.Next() {
		return it.Customer().ID, nil
	}
	return "", it.Err()
}

// searchEscape quotes a value for a Stripe search query string.
func searchEscape(v string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v)
}

// fromStripe is sub with the prices of all its items.
func fromStripe(sub *stripe.Subscription) freemium.Subscription {
	out := freemium.Subscription{
		ID:                 sub.ID,
		Status:             freemium.SubscriptionStatus(sub.Status),
		CurrentPeriodStart: time.Unix(sub.CurrentPeriodStart, 0).UTC(),
		CurrentPeriodEnd:   time.Unix(sub.CurrentPeriodEnd, 0).UTC(),
		CancelAtPeriodEnd:  sub.CancelAtPeriodEnd,
	}
	if sub.Customer != nil {
		out.CustomerID = sub.Customer.ID
	}
	if sub.Items != nil {
		for _, item := range sub.Items.Data {
			if item.Price != nil {
				out.PriceIDs = append(out.PriceIDs, item.Price.ID)
			}
		}
	}
	return out
}
