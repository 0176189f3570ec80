package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/resendnotify"
	"github.com/freemiumkit/freemium/stripesub"
)

// TestReportsFlow walks a user through the loop the demo shows, on each
// store: the free report, the block and its upgrade prompt, the checkout,
// reports on Pro up to its limit, and the funnel that counts it all.
func TestReportsFlow(t *testing.T) {
	for name, newStore := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testReportsFlow(t, newStore(t))
		})
	}
}

func testReportsFlow(t *testing.T, store freemium.Store) {
	ctx := context.Background()
	clock := freemiumtest.NewClock(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	notifier := freemiumtest.NewNotifier()
	a, err := newApp(options{Store: store, Subscriptions: freemiumtest.NewSubscriptions(), PriceID: demoPriceID, Notifier: notifier,
		BaseURL: "http://reports.example", Now: clock.Now})
	require.NoError(t, err)
	srv := httptest.NewServer(a.routes())
	defer srv.Close()
	c := client{t: t, url: srv.URL}

	var u freemium.Usage
	c.decode(http.MethodGet, "/api/usage", "alice", &u)
	assert.True(t, u.FirstReportAvailable, "a new user's free report is available")
	assert.Zero(t, u.Percentage)
	assert.False(t, u.Warning)

	resp, body := c.do(http.MethodPost, "/api/reports", "alice")
	require.Equal(t, http.StatusOK, resp.StatusCode, "the first report is free")
	assert.Equal(t, "Quarterly summary for alice", body["report"])
	assert.Equal(t, "1750", resp.Header.Get("X-Usage-Used"), "the response counts the report it answers")

	resp, body = c.do(http.MethodPost, "/api/reports", "alice")
	require.Equal(t, http.StatusPaymentRequired, resp.StatusCode, "a newcomer is blocked on the second report")
	assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	assert.Equal(t, string(freemium.ReasonSubscriptionRequired), body["reason"])
	assert.Equal(t, freemium.DefaultMessages.SubscriptionRequired, body["detail"])
	assert.Equal(t, "http://reports.example/", body["upgrade_url"], "the page, with its upgrade button")

	// The block enqueued an upgrade prompt; delivery sends it.
	assert.Equal(t, freemium.Funnel{LimitHit: 1}, c.funnel(), "blocked, not yet prompted")
	sent, err := a.gate.DispatchOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, sent)
	require.Len(t, notifier.Sent(), 1)
	prompt := notifier.Sent()[0]
	assert.Equal(t, freemium.UpgradePrompt, prompt.Kind)
	assert.Equal(t, "alice", prompt.UserID)
	assert.Equal(t, "free", prompt.Usage.Plan)
	assert.Equal(t, "http://reports.example/", prompt.UpgradeURL, "an absolute link, for the email")
	assert.Equal(t, freemium.Funnel{LimitHit: 1, Prompted: 1}, c.funnel())

	clock.Advance(time.Hour) // the user thinks it over
	resp, body = c.do(http.MethodPost, "/api/subscribe", "alice")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "pro", body["plan"])
	assert.Equal(t, freemium.Funnel{LimitHit: 1, Prompted: 1, Converted: 1, ConversionRate: 1,
		MedianTimeToConvert: time.Hour, ByPlan: map[string]int{"pro": 1}}, c.funnel())

	// 20,000 tokens a period, 2,000 reserved and 1,750 used per report: 11
	// fit. The 10th takes the user past 80%, and its response says so.
	for i := 1; i <= 11; i++ {
		resp, _ = c.do(http.MethodPost, "/api/reports", "alice")
		require.Equal(t, http.StatusOK, resp.StatusCode, "pro report %d", i)
		assert.Equal(t, i >= 10, resp.Header.Get("X-Usage-Warning") == "true", "X-Usage-Warning of pro report %d", i)
	}
	resp, body = c.do(http.MethodPost, "/api/reports", "alice")
	require.Equal(t, http.StatusPaymentRequired, resp.StatusCode, "the pro allowance runs out")
	assert.Equal(t, string(freemium.ReasonEstimateExceedsRemaining), body["reason"])
	assert.Equal(t, "This report needs about 2,000 tokens, more than the 750 left this period.", body["detail"])

	// 750 tokens are left, fewer than a report's estimate: the report is
	// refused, but the limit is not reached, and no email says it is. The
	// warning at 80% went.
	kinds := func() []freemium.NotificationKind {
		var kinds []freemium.NotificationKind
		for _, n := range notifier.Sent() {
			kinds = append(kinds, n.Kind)
		}
		return kinds
	}
	sent, err = a.gate.DispatchOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, sent)
	assert.ElementsMatch(t, []freemium.NotificationKind{freemium.UpgradePrompt, freemium.UsageWarning}, kinds())

	// Work recorded elsewhere uses the rest: the next refusal is at the
	// limit, and says so.
	require.NoError(t, a.gate.Record(ctx, "alice", 750, ""))
	resp, _ = c.do(http.MethodPost, "/api/reports", "alice")
	require.Equal(t, http.StatusPaymentRequired, resp.StatusCode)
	sent, err = a.gate.DispatchOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, sent)
	assert.ElementsMatch(t, []freemium.NotificationKind{freemium.UpgradePrompt, freemium.UsageWarning, freemium.LimitReached}, kinds())
	assert.Equal(t, 1, c.funnel().LimitHit, "a user blocked twice is one limit hit")

	resp, _ = c.do(http.MethodPost, "/api/reports", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = c.do(http.MethodPost, "/api/subscribe", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp = c.decode(http.MethodGet, "/api/usage", "alice", &u)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "pro", u.Plan)
	assert.Equal(t, int64(11*(estimatedTokens-250)+750), u.Used)
}

// TestEmailsWithoutResend: with nothing set, each notification is written
// to the log, with what happened and to whom, but never an email address.
func TestEmailsWithoutResend(t *testing.T) {
	opts, closeServices, err := connect(context.Background(), env(nil))
	require.NoError(t, err)
	defer closeServices()
	require.IsType(t, logNotifier{}, opts.Notifier)

	var buf bytes.Buffer
	n := logNotifier{slog.New(slog.NewTextHandler(&buf, nil))}
	for _, user := range []string{"alice", "bob@example.com"} {
		require.NoError(t, n.Notify(context.Background(), freemium.Notification{
			ID: "ntf_1", Kind: freemium.UpgradePrompt, UserID: user,
			Usage: freemium.Usage{Plan: "free", Used: 1750, Limit: 0},
		}))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	for _, want := range []string{"kind=upgrade_prompt", "user=alice", "plan=free", "used=1750", "limit=0"} {
		assert.Contains(t, lines[0], want)
	}
	assert.NotContains(t, lines[1], "example.com", "an email address is never logged")
	assert.Contains(t, lines[1], `user="(an email address)"`)
}

// TestEmailsWithResend: RESEND_API_KEY switches to Resend, which emails
// users whose ID is an address, and gives up at once on the others.
func TestEmailsWithResend(t *testing.T) {
	_, _, err := connect(context.Background(), env(map[string]string{"RESEND_API_KEY": "re_test"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "RESEND_API_KEY is set")
	assert.Contains(t, err.Error(), "Config.From is empty", "the missing RESEND_FROM is named")

	opts, closeServices, err := connect(context.Background(), env(map[string]string{
		"RESEND_API_KEY": "re_test", "RESEND_FROM": "Reports <reports@example.com>",
	}))
	require.NoError(t, err)
	defer closeServices()
	require.IsType(t, &resendnotify.Notifier{}, opts.Notifier)

	// A user without an address is a permanent failure, decided before any
	// request: the outbox does not retry it.
	err = opts.Notifier.Notify(context.Background(), freemium.Notification{ID: "ntf_1", Kind: freemium.UpgradePrompt, UserID: "alice"})
	assert.ErrorIs(t, err, freemium.ErrNoRecipient)
	var ne *freemium.NotifyError
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Permanent)

	for user, want := range map[string]string{"bob@example.com": "bob@example.com", "alice": "", "Bob <bob@example.com>": ""} {
		email, name, err := emailRecipient(context.Background(), user)
		require.NoError(t, err)
		assert.Equal(t, want, email, "user %q", user)
		assert.Empty(t, name)
	}
}

// TestServicesFromTheEnvironment: nothing set is the zero-setup demo;
// STRIPE_SECRET_KEY switches to Stripe, and needs a price.
func TestServicesFromTheEnvironment(t *testing.T) {
	ctx := context.Background()
	opts, closeServices, err := connect(ctx, env(nil))
	require.NoError(t, err)
	closeServices()
	assert.IsType(t, &freemium.MemoryStore{}, opts.Store)
	assert.IsType(t, &freemiumtest.Subscriptions{}, opts.Subscriptions)
	assert.Equal(t, demoPriceID, opts.PriceID)
	assert.Empty(t, opts.WebhookSecret)
	assert.Contains(t, opts.describe.store, "memory")
	assert.Contains(t, opts.describe.subscriptions, "demo checkout")
	assert.Contains(t, opts.describe.email, "to the log")

	_, _, err = connect(ctx, env(map[string]string{"STRIPE_SECRET_KEY": "sk_test_123"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "STRIPE_PRICE_ID is empty")

	opts, closeServices, err = connect(ctx, env(map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_PRICE_ID": "price_live_pro", "STRIPE_WEBHOOK_SECRET": "whsec_test",
	}))
	require.NoError(t, err)
	closeServices()
	assert.IsType(t, &stripesub.Checker{}, opts.Subscriptions)
	assert.Equal(t, "price_live_pro", opts.PriceID)
	assert.Contains(t, opts.describe.subscriptions, "Stripe")

	// The webhook is mounted only with its secret, and checks signatures.
	for secret, want := range map[string]int{"whsec_test": http.StatusBadRequest, "": http.StatusNotFound} {
		opts.WebhookSecret = secret
		a, err := newApp(opts)
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		a.routes().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webhooks/stripe", strings.NewReader(`{"type":"customer.subscription.created"}`)))
		assert.Equal(t, want, rec.Code, "secret %q", secret)
	}
}

// TestStripeCheckout: with Stripe, the upgrade button gets a Stripe
// Checkout page, which returns to /checkout/success; it runs against
// stripe-mock on FREEMIUM_TEST_STRIPE_URL.
func TestStripeCheckout(t *testing.T) {
	backend := testenv.Need(t, testenv.StripeMockURL, "the stripe-mock tests")
	stripe, err := stripesub.New(stripesub.Config{APIKey: "sk_test_123", BackendURL: backend})
	require.NoError(t, err)
	a, err := newApp(options{Store: freemium.NewMemoryStore(), Subscriptions: stripe, PriceID: "price_123", Notifier: freemiumtest.NewNotifier()})
	require.NoError(t, err)
	srv := httptest.NewServer(a.routes())
	defer srv.Close()
	c := client{t: t, url: srv.URL}

	resp, body := c.do(http.MethodPost, "/api/subscribe", "alice")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body %v", body)
	assert.NotEmpty(t, body["checkout_url"])
	assert.Nil(t, body["plan"], "nobody is subscribed before paying")

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Get(srv.URL + "/checkout/success?user=alice&session=cs_test_123")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/?user=alice", resp.Header.Get("Location"))
}

// client calls the demo's API as the page does.
type client struct {
	t   *testing.T
	url string
}

// do sends a request as user ("" for none), and decodes the JSON answer.
func (c client) do(method, path, user string) (*http.Response, map[string]any) {
	c.t.Helper()
	var body map[string]any
	resp := c.decode(method, path, user, &body)
	return resp, body
}

func (c client) decode(method, path, user string, v any) *http.Response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, nil)
	require.NoError(c.t, err)
	if user != "" {
		req.Header.Set("X-User-ID", user)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(v)
	return resp
}

// funnel is GET /api/funnel, without the range.
func (c client) funnel() freemium.Funnel {
	c.t.Helper()
	var f freemium.Funnel
	resp := c.decode(http.MethodGet, "/api/funnel", "", &f)
	require.Equal(c.t, http.StatusOK, resp.StatusCode)
	require.False(c.t, f.From.IsZero() || f.To.IsZero(), "the funnel says its range")
	f.From, f.To = time.Time{}, time.Time{}
	if len(f.ByPlan) == 0 {
		f.ByPlan = nil
	}
	return f
}

// env is a getenv on vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}
