package freemium_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/resendtest"
	"github.com/freemiumkit/freemium/internal/stripetest"
	"github.com/freemiumkit/freemium/stripesub"
)

// lockedBuffer is a log destination that the dispatcher's goroutines may
// write to at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// webhookSecret is the webhook endpoint's signing secret in these tests.
const webhookSecret = "whsec_test_secret"

// assertNoSecretIn checks that text tells none of the Stripe key, the
// Resend key, the webhook signing secret or the recipient's address, in
// any case.
func assertNoSecretIn(t *testing.T, what, text string) {
	t.Helper()
	lower := strings.ToLower(text)
	for _, secret := range []string{stripetest.Key, resendtest.Key, webhookSecret, resendtest.Email} {
		assert.NotContains(t, lower, strings.ToLower(secret), "%s tells a secret", what)
	}
}

// Failures of Stripe, of Resend and of a webhook's signature are logged and
// returned without the API keys, the signing secret or the user's email
// address: in the log, in the errors, and in what the outbox records.
func TestSecurityNoSecretsInLogsOrErrors(t *testing.T) {
	ctx := context.Background()
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	stripe := stripetest.New(t)
	stripe.SetCustomer("u1", "cus_1")
	stripe.SetCustomer("u2", "cus_2")
	checker := stripetest.Checker(t, stripesub.Config{APIKey: stripetest.Key, BackendURL: stripe.URL(), SearchCustomers: true})

	resend := resendtest.New(t)
	rcfg := resendtest.Config(resend)
	rcfg.Recipient = resendtest.Recipients(map[string][2]string{"u1": {resendtest.Email, "Jane Doe"}, "u2": {resendtest.Email, ""}, "u3": {resendtest.Email, "Jim"}})
	notifier := resendtest.Notifier(t, rcfg)

	store := freemium.NewMemoryStore()
	clock := freemiumtest.NewClock(time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC))
	cfg := freemium.Config{
		Store: store, Subscriptions: checker, Notifier: notifier, Now: clock.Now, Logger: logger,
		Free:                 freemium.Plan{Limit: 10},
		SubscriptionFallback: freemium.FallbackFree,
		Delivery:             freemium.DeliveryConfig{MaxAttempts: 1}, // every failure is final, and logged
	}
	g, err := freemium.New(cfg)
	require.NoError(t, err)
	var errs []error

	// Stripe answers 500 to the refresh behind u1's check: the Gate logs it
	// and decides on the free plan (which blocks, without a prompt: u1's
	// plan is unknown). u2 and u3, who have no subscription and have used
	// the free plan's 10 tokens, are blocked and prompted.
	for _, user := range []string{"u2", "u3"} {
		require.NoError(t, g.Record(ctx, user, 10, ""))
	}
	stripe.Fail(500, 500) // the search, and stripe-go's one retry
	for _, user := range []string{"u1", "u2", "u3"} {
		d, err := g.Check(ctx, user, 100)
		require.NoError(t, err)
		assert.False(t, d.Allowed)
	}
	// Refresh returns Stripe's failure.
	stripe.Fail(500, 500)
	err = g.Refresh(ctx, "u1")
	require.Error(t, err)
	errs = append(errs, err)
	// With FallbackError the check itself returns it.
	strict := cfg
	strict.SubscriptionFallback = freemium.FallbackError
	strict.Store = freemium.NewMemoryStore()
	sg, err := freemium.New(strict)
	require.NoError(t, err)
	stripe.Fail(500, 500)
	_, err = sg.Check(ctx, "u1", 1)
	require.ErrorIs(t, err, freemium.ErrSubscriptionUnavailable)
	errs = append(errs, err)

	// Resend answers 500 to one upgrade prompt and 422 to the other, each
	// message quoting the address; with MaxAttempts 1 both fail for good.
	resend.FailNext(resendtest.Fault{Status: 500}, resendtest.Fault{Status: 422})
	sent, err := g.DispatchOnce(ctx)
	require.NoError(t, err)
	assert.Zero(t, sent)
	assert.Equal(t, 2, resend.Requests())
	for _, user := range []string{"u1", "u2"} {
		n := resendtest.UpgradePrompt("ntf_direct_" + user)
		n.UserID = user
		resend.FailNext(resendtest.Fault{Status: 500})
		_, err = notifier.Send(ctx, n)
		require.Error(t, err)
		errs = append(errs, err)
	}
	resend.FailNext(resendtest.Fault{Status: 422})
	errs = append(errs, notifier.Notify(ctx, resendtest.UpgradePrompt("ntf_direct_422")))
	records, err := store.Notifications(ctx, clock.Now().Add(-time.Hour), clock.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, records, 2)
	for _, r := range records {
		assert.Equal(t, freemium.DeliveryFailed, r.State)
		assert.NotEmpty(t, r.LastError)
		assertNoSecretIn(t, "the outbox's LastError", r.LastError)
	}

	// A webhook signed with another secret is refused, and logged.
	wh := stripesub.WebhookHandler(g, stripesub.WebhookConfig{Secret: webhookSecret})
	payload, err := os.ReadFile("stripesub/testdata/stripe/subscription_updated_active.json")
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload: payload, Secret: "whsec_someone_else", Timestamp: time.Now()}).Header)
	rec := httptest.NewRecorder()
	wh.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assertNoSecretIn(t, "the webhook's answer", rec.Body.String())

	log := logs.String()
	for _, want := range []string{"subscription unknown; deciding on the free plan", "notification failed for good", "stripe webhook refused"} {
		assert.Contains(t, log, want, "the failure was logged: the test drove it")
	}
	assertNoSecretIn(t, "the log", log)
	require.Len(t, errs, 5)
	for _, err := range errs {
		require.Error(t, err)
		for e := err; e != nil; e = errors.Unwrap(e) {
			assertNoSecretIn(t, "error "+e.Error(), e.Error())
		}
	}
}

// A plan name and an upgrade URL that carry markup and script reach the
// email, through the Gate, its outbox and ResendNotifier, escaped and
// neutralised, in every kind of email.
func TestSecurityEmailEscapingEndToEnd(t *testing.T) {
	ctx := context.Background()
	const plan = `<script>alert("plan")</script>`
	resend := resendtest.New(t)
	t0 := time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)
	subs := freemiumtest.NewSubscriptions()
	subs.Subscribe("u1", "price_x", t0.Add(-time.Hour), t0.AddDate(0, 1, 0))
	cfg := freemium.Config{
		Store: freemium.NewMemoryStore(), Subscriptions: subs, Notifier: resendtest.Notifier(t, resendtest.Config(resend)),
		Now: freemiumtest.NewClock(t0).Now, Logger: slog.New(slog.DiscardHandler),
		Plans:      []freemium.Plan{{Name: plan, PriceIDs: []string{"price_x"}, Limit: 100}},
		UpgradeURL: "javascript:alert(document.cookie)",
	}
	_, err := freemium.New(cfg)
	require.ErrorContains(t, err, "Config.UpgradeURL", "New refuses a script URL, naming the field")
	cfg.UpgradeURL = `https://app.example/up?a="><script>alert("url")</script>`
	g, err := freemium.New(cfg)
	require.NoError(t, err)
	require.NoError(t, g.Record(ctx, "u1", 100, ""))
	d, err := g.Check(ctx, "u1", 1)
	require.NoError(t, err)
	require.False(t, d.Allowed)
	require.Equal(t, plan, d.Plan)
	sent, err := g.DispatchOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, sent)
	require.Len(t, resend.Delivered(), 1)
	html := resend.Delivered()[0].Body.HTML
	assertNeutralised(t, html, plan)
	assert.Contains(t, html, escapedPlan, "the limit-reached email names the plan, escaped")
	assert.Contains(t, html, `href="https://app.example/up?a=%22%3e%3cscript%3e`, "the URL does not break out of its attribute")

	// Each kind, and other dangerous schemes, straight through the notifier.
	notifier := resendtest.Notifier(t, resendtest.Config(resend))
	for _, kind := range []freemium.NotificationKind{freemium.UsageWarning, freemium.UpgradePrompt, freemium.LimitReached} {
		for i, url := range []string{
			"javascript:alert(1)",
			" javascript:alert(1)",
			"java\tscript:alert(1)",
			"JAVASCRIPT:alert(1)",
			"vbscript:msgbox(1)",
			"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
		} {
			n := resendtest.UpgradePrompt("ntf_" + string(kind) + "_" + string(rune('a'+i)))
			n.Kind = kind
			n.Usage.Plan = plan
			n.UpgradeURL = url
			_, err := notifier.Send(ctx, n)
			require.NoError(t, err, "%s %q", kind, url)
			all := resend.Delivered()
			html := all[len(all)-1].Body.HTML
			assertNeutralised(t, html, plan)
			assert.Contains(t, html, `href="#ZgotmplZ"`, "%s %q: the link goes nowhere", kind, url)
		}
	}
}

// escapedPlan is the plan of TestSecurityEmailEscapingEndToEnd, as
// html/template escapes it.
const escapedPlan = "&lt;script&gt;alert(&#34;plan&#34;)&lt;/script&gt;"

// assertNeutralised checks that html runs no script, shows plan only
// escaped, and links nowhere dangerous.
func assertNeutralised(t *testing.T, html, plan string) {
	t.Helper()
	lower := strings.ToLower(html)
	assert.NotContains(t, lower, "<script")
	assert.NotContains(t, html, plan)
	for _, scheme := range []string{"javascript:", " javascript:", "java\tscript:", "vbscript:", "data:"} {
		assert.NotContains(t, lower, `href="`+scheme, "no %q link", scheme)
	}
}
