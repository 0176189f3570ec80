package stripesub_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/stripetest"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/stripesub"
)

// subIDs lists the subscriptions' IDs and statuses, "id=status", in order.
func subIDs(subs []freemium.Subscription) []string {
	out := []string{}
	for _, s := range subs {
		out = append(out, s.ID+"="+string(s.Status))
	}
	return out
}

func TestStripeSubscriptionsFollowStripe(t *testing.T) {
	ctx := context.Background()
	stripe := stripetest.New(t)
	checker := stripetest.Checker(t, stripesub.Config{APIKey: stripetest.Key, BackendURL: stripe.URL(), SearchCustomers: true})
	start := time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 1, 0)

	subs, err := checker.Subscriptions(ctx, "u1")
	require.NoError(t, err)
	assert.Empty(t, subs, "a user without a customer has no subscription")
	assert.Equal(t, 0, stripe.Count("/v1/subscriptions"), "no customer, no subscription lookup")

	stripe.SetCustomer("u1", "cus_1")
	subs, err = checker.Subscriptions(ctx, "u1")
	require.NoError(t, err)
	assert.Empty(t, subs, "a customer without subscriptions")

	stripe.SetSubs("cus_1", stripetest.Sub("sub_1", "cus_1", "active", start, end, "price_seats", "price_pro"))
	subs, err = checker.Subscriptions(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, []freemium.Subscription{{ID: "sub_1", CustomerID: "cus_1", PriceIDs: []string{"price_seats", "price_pro"},
		Status: freemium.StatusActive, CurrentPeriodStart: start, CurrentPeriodEnd: end}}, subs, "every item's price")

	stripe.SetSubs("cus_1",
		stripetest.Sub("sub_2", "cus_1", "canceled", start.AddDate(0, 1, 0), end.AddDate(0, 1, 0), "price_team"),
		stripetest.Sub("sub_1", "cus_1", "active", start, end, "price_pro"))
	subs, err = checker.Subscriptions(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, []string{"sub_2=canceled", "sub_1=active"}, subIDs(subs), "every subscription, whatever its status")

	stripe.SetSubs("cus_1", stripetest.Sub("sub_1", "cus_1", "canceled", start, end, "price_pro"))
	subs, err = checker.Subscriptions(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, []string{"sub_1=canceled"}, subIDs(subs), "a change in Stripe shows on the next call")

	stripe.SetCustomer(`o'brien\x`, "cus_2")
	stripe.SetSubs("cus_2", stripetest.Sub("sub_3", "cus_2", "trialing", start, end, "price_pro"))
	subs, err = checker.Subscriptions(ctx, `o'brien\x`)
	require.NoError(t, err)
	assert.Equal(t, []string{"sub_3=trialing"}, subIDs(subs), "quotes and backslashes in a user ID are escaped in the search")
}

// Stripe lists a customer's subscriptions newest first, a page at a time: a
// customer with many failed attempts (incomplete_expired) before the
// subscription that pays is still seen whole.
func TestStripeSubscriptionsEveryPage(t *testing.T) {
	stripe := stripetest.New(t)
	start := time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC)
	var subs []map[string]any
	for i := range 150 {
		subs = append(subs, stripetest.Sub(fmt.Sprintf("sub_failed_%d", i), "cus_1", "incomplete_expired", start, start.AddDate(0, 1, 0), "price_pro"))
	}
	stripe.SetSubs("cus_1", append(subs, stripetest.Sub("sub_paid", "cus_1", "active", start, start.AddDate(0, 1, 0), "price_pro"))...)
	checker := stripetest.Checker(t, stripesub.Config{APIKey: stripetest.Key, BackendURL: stripe.URL()})
	got, err := checker.CustomerSubscriptions(context.Background(), "u1", "cus_1")
	require.NoError(t, err)
	require.Len(t, got, 151)
	assert.Equal(t, "sub_paid=active", subIDs(got)[150])
	assert.Equal(t, 2, stripe.Count("/v1/subscriptions"), "two pages of 100")

	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Subscriptions: checker,
		Free:  freemium.Plan{FirstReportFree: true},
		Plans: []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000}},
		Now:   freemiumtest.NewClock(start.Add(time.Hour)).Now})
	require.NoError(t, err)
	require.NoError(t, g.LinkCustomer(context.Background(), "u1", "cus_1"))
	u, err := g.Usage(context.Background(), "u1")
	require.NoError(t, err)
	assert.Equal(t, "pro", u.Plan, "the subscription on the second page places the user")
}

func TestStripeSubscriptionsCustomerIDFunc(t *testing.T) {
	ctx := context.Background()
	stripe := stripetest.New(t)
	start := time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC)
	stripe.SetSubs("cus_9", stripetest.Sub("sub_9", "cus_9", "past_due", start, start.AddDate(0, 1, 0), "price_pro"))
	checker := stripetest.Checker(t, stripesub.Config{APIKey: stripetest.Key, BackendURL: stripe.URL(), SearchCustomers: true,
		CustomerID: func(_ context.Context, userID string) (string, error) {
			if userID == "broken" {
				return "", errors.New("host lookup failed")
			}
			return map[string]string{"u9": "cus_9"}[userID], nil
		}})
	subs, err := checker.Subscriptions(ctx, "u9")
	require.NoError(t, err)
	assert.Equal(t, []string{"sub_9=past_due"}, subIDs(subs))
	_, err = checker.Subscriptions(ctx, "broken")
	assert.ErrorContains(t, err, "host lookup failed")
	assert.Equal(t, 0, stripe.Count("/v1/customers/search"), "CustomerID replaces the search")
}

func TestStripeSubscriptionsFailures(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC)
	setup := func(t *testing.T, client *http.Client) (*stripetest.StandIn, *stripesub.Checker) {
		stripe := stripetest.New(t)
		stripe.SetCustomer("u1", "cus_1")
		stripe.SetSubs("cus_1", stripetest.Sub("sub_1", "cus_1", "active", start, start.AddDate(0, 1, 0), "price_pro"))
		return stripe, stripetest.Checker(t, stripesub.Config{APIKey: stripetest.Key, BackendURL: stripe.URL(),
			SearchCustomers: true, HTTPClient: client})
	}
	noKey := func(t *testing.T, err error) {
		t.Helper()
		assert.NotContains(t, err.Error(), stripetest.Key, "the API key never appears in an error")
	}

	t.Run("500 then 200 is retried once", func(t *testing.T) {
		stripe, checker := setup(t, nil)
		stripe.Fail(http.StatusInternalServerError)
		subs, err := checker.Subscriptions(ctx, "u1")
		require.NoError(t, err)
		assert.Equal(t, []string{"sub_1=active"}, subIDs(subs))
		assert.Equal(t, 2, stripe.Count("/v1/customers/search"))
	})
	t.Run("500 twice fails after one retry", func(t *testing.T) {
		stripe, checker := setup(t, nil)
		stripe.Fail(http.StatusInternalServerError, http.StatusInternalServerError, http.StatusInternalServerError)
		_, err := checker.Subscriptions(ctx, "u1")
		require.Error(t, err)
		noKey(t, err)
		assert.Equal(t, 2, stripe.Count("/v1/customers/search"), "no more than one retry on the check path")
	})
	t.Run("429 is an error", func(t *testing.T) {
		stripe, checker := setup(t, nil)
		stripe.Fail(http.StatusTooManyRequests, http.StatusTooManyRequests)
		_, err := checker.Subscriptions(ctx, "u1")
		require.Error(t, err)
		noKey(t, err)
	})
	t.Run("404 on the subscription list is an error", func(t *testing.T) {
		stripe, checker := setup(t, nil)
		stripe.Fail(0, http.StatusNotFound) // the search passes, the list does not
		_, err := checker.Subscriptions(ctx, "u1")
		require.Error(t, err)
		noKey(t, err)
		assert.Contains(t, err.Error(), "cus_1", "the error names the customer")
		assert.Equal(t, 1, stripe.Count("/v1/subscriptions"), "a 404 is not retried")
	})
	t.Run("a wrong key is an error without the key", func(t *testing.T) {
		stripe := stripetest.New(t)
		checker := stripetest.Checker(t, stripesub.Config{APIKey: "sk_test_wrong_key", BackendURL: stripe.URL(), SearchCustomers: true})
		_, err := checker.Subscriptions(ctx, "u1")
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "sk_test_wrong_key")
	})
	t.Run("a hung Stripe times out", func(t *testing.T) {
		stripe, checker := setup(t, &http.Client{Timeout: 50 * time.Millisecond})
		stripe.HangAll()
		_, err := checker.Subscriptions(ctx, "u1")
		require.Error(t, err)
		assert.LessOrEqual(t, stripe.Count("/v1/customers/search"), 2)
	})
	t.Run("a canceled context stops the call", func(t *testing.T) {
		_, checker := setup(t, nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := checker.Subscriptions(cctx, "u1")
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestNewStripeSubscriptionsValidates(t *testing.T) {
	_, err := stripesub.New(stripesub.Config{SearchCustomers: true})
	assert.ErrorContains(t, err, "stripesub: Config.APIKey")
}

// Without CustomerID or search, only customers the Gate linked are asked
// about: an unlinked user has no subscription, and Stripe is not called.
func TestStripeSubscriptionsLinkedCustomersOnly(t *testing.T) {
	stripe := stripetest.New(t)
	start := time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC)
	stripe.SetSubs("cus_1", stripetest.Sub("sub_1", "cus_1", "active", start, start.AddDate(0, 1, 0), "price_pro"))
	checker := stripetest.Checker(t, stripesub.Config{APIKey: stripetest.Key, BackendURL: stripe.URL()})
	subs, err := checker.Subscriptions(context.Background(), "u1")
	require.NoError(t, err)
	assert.Empty(t, subs)
	assert.Zero(t, stripe.Count("/v1/subscriptions")+stripe.Count("/v1/customers/search"))
	subs, err = checker.CustomerSubscriptions(context.Background(), "u1", "cus_1")
	require.NoError(t, err)
	assert.Equal(t, []string{"sub_1=active"}, subIDs(subs))
}

// The Gate places a Stripe subscriber on the plan of the subscription's price.
func TestGateWithStripeSubscriptions(t *testing.T) {
	ctx := context.Background()
	stripe := stripetest.New(t)
	clock := freemiumtest.NewClock(time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC))
	start := time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC)
	stripe.SetCustomer("u1", "cus_1")
	stripe.SetSubs("cus_1", stripetest.Sub("sub_1", "cus_1", "active", start, start.AddDate(0, 1, 0), "price_pro"))
	g, err := freemium.New(freemium.Config{
		Store:         freemium.NewMemoryStore(),
		Subscriptions: stripetest.Checker(t, stripesub.Config{APIKey: stripetest.Key, BackendURL: stripe.URL(), SearchCustomers: true}),
		Free:          freemium.Plan{FirstReportFree: true},
		Plans:         []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000, Period: freemium.BillingCycle}},
		Now:           clock.Now,
	})
	require.NoError(t, err)
	u, err := g.Usage(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, "pro", u.Plan)
	assert.Equal(t, start, u.PeriodStart)
	u, err = g.Usage(ctx, "u2")
	require.NoError(t, err)
	assert.Equal(t, "free", u.Plan)
}

// Against the real stripe-mock (scripts/test.sh starts it): the requests are
// valid for API version 2023-10-16 and the answers map.
func TestStripeSubscriptionsStripeMock(t *testing.T) {
	checker := stripeMockChecker(t)
	subs, err := checker.Subscriptions(context.Background(), "u1")
	require.NoError(t, err)
	// stripe-mock answers every search with a fixture customer, and every
	// list with a fixture subscription.
	require.Len(t, subs, 1)
	sub := subs[0]
	assert.True(t, strings.HasPrefix(sub.ID, "sub_"), "ID %q", sub.ID)
	require.NotEmpty(t, sub.PriceIDs)
	assert.True(t, strings.HasPrefix(sub.PriceIDs[0], "price_"), "PriceIDs %q", sub.PriceIDs)
	assert.Equal(t, freemium.StatusActive, sub.Status)
	assert.False(t, sub.CurrentPeriodStart.IsZero())
}

func TestGateCheckoutURL(t *testing.T) {
	ctx := context.Background()
	stripe := stripetest.New(t)
	stripe.SetCustomer("u1", "cus_1")
	newGate := func(subs freemium.SubscriptionChecker) *freemium.Gate {
		g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Subscriptions: subs,
			Free:  freemium.Plan{FirstReportFree: true},
			Plans: []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000}}})
		require.NoError(t, err)
		return g
	}
	g := newGate(stripetest.Checker(t, stripesub.Config{APIKey: stripetest.Key, BackendURL: stripe.URL(), SearchCustomers: true}))
	params := freemium.CheckoutParams{SuccessURL: "https://app.example/upgraded?s={CHECKOUT_SESSION_ID}"}

	link, err := g.CheckoutURL(ctx, "u1", "price_pro", params)
	require.NoError(t, err)
	assert.Equal(t, "https://checkout.example/c/pay/cs_test_1", link)
	require.Len(t, stripe.Checkouts(), 1)
	form := stripe.Checkouts()[0]
	for field, want := range map[string]string{
		"mode": "subscription", "line_items[0][price]": "price_pro", "line_items[0][quantity]": "1",
		"client_reference_id": "u1", "customer": "cus_1", "success_url": params.SuccessURL,
		"metadata[user_id]": "u1", "subscription_data[metadata][user_id]": "u1",
	} {
		assert.Equal(t, want, form.Get(field), field)
	}
	for _, absent := range []string{"customer_email", "cancel_url", "allow_promotion_codes", "subscription_data[trial_period_days]"} {
		assert.False(t, form.Has(absent), "%s sent without being asked for", absent)
	}

	_, err = g.CheckoutURL(ctx, "newcomer", "price_pro", freemium.CheckoutParams{
		SuccessURL: "https://app.example/ok", CancelURL: "https://app.example/pricing",
		Email: "new@example.com", AllowPromotionCodes: true, TrialDays: 14,
	})
	require.NoError(t, err)
	form = stripe.Checkouts()[1]
	assert.False(t, form.Has("customer"), "a user without a customer gets a new one")
	for field, want := range map[string]string{
		"customer_email": "new@example.com", "cancel_url": "https://app.example/pricing",
		"allow_promotion_codes": "true", "subscription_data[trial_period_days]": "14",
	} {
		assert.Equal(t, want, form.Get(field), field)
	}

	// Refused before any request.
	_, err = g.CheckoutURL(ctx, "u1", "price_unknown", params)
	assert.ErrorContains(t, err, `price "price_unknown" is in no plan`)
	_, err = g.CheckoutURL(ctx, "u1", "price_pro", freemium.CheckoutParams{})
	assert.ErrorContains(t, err, "SuccessURL")
	_, err = g.CheckoutURL(ctx, "", "price_pro", params)
	assert.ErrorIs(t, err, freemium.ErrInvalidUserID)
	_, err = newGate(freemiumtest.NewSubscriptions()).CheckoutURL(ctx, "u1", "price_pro", params)
	assert.ErrorContains(t, err, "cannot create checkouts")
	assert.Len(t, stripe.Checkouts(), 2, "no session was created for a refused call")

	stripe.Fail(0, http.StatusInternalServerError, http.StatusInternalServerError)
	_, err = g.CheckoutURL(ctx, "u1", "price_pro", params)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), stripetest.Key)
}

func TestCheckoutURLStripeMock(t *testing.T) {
	checker := stripeMockChecker(t)
	link, err := checker.CheckoutURL(context.Background(), "u1", "price_123", freemium.CheckoutParams{
		SuccessURL: "https://app.example/ok", CancelURL: "https://app.example/pricing", TrialDays: 7, AllowPromotionCodes: true})
	require.NoError(t, err, "stripe-mock validates the request against API 2023-10-16")
	assert.True(t, strings.HasPrefix(link, "https://"), "link %q", link)
}

// stripeMockChecker is a StripeSubscriptions on the stripe-mock at
// FREEMIUM_TEST_STRIPE_URL. Without it the test is skipped, unless CI=true,
// where it fails.
func stripeMockChecker(t *testing.T) *stripesub.Checker {
	t.Helper()
	url := testenv.Need(t, testenv.StripeMockURL, "the stripe-mock tests")
	return stripetest.Checker(t, stripesub.Config{APIKey: "sk_test_123", BackendURL: url, SearchCustomers: true})
}

// Against stripe-mock: the session read is a valid request and decodes.
func TestCheckoutSessionStripeMock(t *testing.T) {
	checker := stripeMockChecker(t)
	_, err := checker.CheckoutSession(context.Background(), "cs_test_123")
	if err != nil {
		assert.Contains(t, err.Error(), "not complete", "stripe-mock's fixture session is open")
	}
}
