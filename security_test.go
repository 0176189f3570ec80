package freemium_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
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

// assertNoSecretIn checks that text tells none of the Stripe key, the
// Resend key, the webhook signing secret or the recipient's address, in
// any case.
func assertNoSecretIn(t *testing.T, what, text string) {
	t.Helper()
	lower := strings.ToLower(text)
	for _, secret := range []string{testStripeKey, testResendKey, webhookSecret, testEmail} {
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

	stripe := newStripeStandIn(t)
	stripe.setCustomer("u1", "cus_1")
	stripe.setCustomer("u2", "cus_2")
	checker := newStripeChecker(t, freemium.StripeConfig{APIKey: testStripeKey, BackendURL: stripe.srv.URL, SearchCustomers: true})

	resend := newResendStandIn(t)
	rcfg := resendConfig(resend)
	rcfg.Recipient = recipients(map[string][2]string{"u1": {testEmail, "Jane Doe"}, "u2": {testEmail, ""}, "u3": {testEmail, "Jim"}})
	notifier := newResendNotifier(t, rcfg)

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
	stripe.fail(500, 500) // the search, and stripe-go's one retry
	for _, user := range []string{"u1", "u2", "u3"} {
		d, err := g.Check(ctx, user, 100)
		require.NoError(t, err)
		assert.False(t, d.Allowed)
	}
	// Refresh returns Stripe's failure.
	stripe.fail(500, 500)
	err = g.Refresh(ctx, "u1")
	require.Error(t, err)
	errs = append(errs, err)
	// With FallbackError the check itself returns it.
	strict := cfg
	strict.SubscriptionFallback = freemium.FallbackError
	strict.Store = freemium.NewMemoryStore()
	sg, err := freemium.New(strict)
	require.NoError(t, err)
	stripe.fail(500, 500)
	_, err = sg.Check(ctx, "u1", 1)
	require.ErrorIs(t, err, freemium.ErrSubscriptionUnavailable)
	errs = append(errs, err)

	// Resend answers 500 to one upgrade prompt and 422 to the other, each
	// message quoting the address; with MaxAttempts 1 both fail for good.
	resend.failNext(resendFault{status: 500}, resendFault{status: 422})
	sent, err := g.DispatchOnce(ctx)
	require.NoError(t, err)
	assert.Zero(t, sent)
	assert.Equal(t, 2, resend.requestCount())
	for _, user := range []string{"u1", "u2"} {
		n := upgradePrompt("ntf_direct_" + user)
		n.UserID = user
		resend.failNext(resendFault{status: 500})
		_, err = notifier.Send(ctx, n)
		require.Error(t, err)
		errs = append(errs, err)
	}
	resend.failNext(resendFault{status: 422})
	errs = append(errs, notifier.Notify(ctx, upgradePrompt("ntf_direct_422")))
	records, err := store.Notifications(ctx, clock.Now().Add(-time.Hour), clock.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, records, 2)
	for _, r := range records {
		assert.Equal(t, freemium.DeliveryFailed, r.State)
		assert.NotEmpty(t, r.LastError)
		assertNoSecretIn(t, "the outbox's LastError", r.LastError)
	}

	// A webhook signed with another secret is refused, and logged.
	wh := g.StripeWebhookHandler(webhookSecret)
	payload := fixture(t, "subscription_updated_active.json")
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", signPayload(payload, "whsec_someone_else", time.Now()))
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

// NewPostgresStore refuses a schema name that is not a plain lower-case
// identifier, or that every database has (public, information_schema),
// naming the field, before any SQL runs; a 63-byte name, the
// longest Postgres keeps, is taken.
func TestSecuritySchemaNames(t *testing.T) {
	ctx := context.Background()
	pool := pgPool(t)
	hostile := []string{
		"freemium; DROP TABLE x",
		"pg_freemium",        // Postgres reserves the prefix
		"public",             // every database has it, shared with other tables
		"information_schema", // likewise, and Postgres's own
		`freemium"; DROP SCHEMA public CASCADE; --`,
		`"quoted"`,
		"Upper",
		strings.Repeat("a", 64),
		" ",
		"\t",
		"1starts_with_a_digit",
		"dash-ed",
		"dot.ted",
		"spa ce",
		"fréemium",
		"ｆｒｅｅｍｉｕｍ", // fullwidth
		"freemium\x00",
		"freemium\n",
	}
	folded := make([]string, 0, 3*len(hostile))
	for _, name := range hostile {
		name = strings.ReplaceAll(name, "\x00", "") // Postgres text holds no NUL
		folded = append(folded, name, strings.ToLower(name), strings.Trim(name, `"`))
	}
	// Some fold to "freemium", the default, which a host's own store in
	// the test database may have created: only a new schema counts.
	before := schemasNamed(t, pool, folded)
	for _, name := range hostile {
		s, err := freemium.NewPostgresStore(pool, &freemium.PostgresConfig{Schema: name})
		require.Error(t, err, "schema %q", name)
		assert.Nil(t, s)
		assert.Contains(t, err.Error(), "PostgresConfig.Schema", "schema %q: the error names the field", name)
	}
	assert.Equal(t, before, schemasNamed(t, pool, folded), "no schema was created for a refused name")

	// The longest name that fits: 63 bytes.
	longest := "test_" + strings.Repeat("x", 58)
	require.Len(t, longest, 63)
	s, err := freemium.NewPostgresStore(pool, &freemium.PostgresConfig{Schema: longest})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+longest+" CASCADE")
		assert.NoError(t, err)
	})
	require.NoError(t, s.Migrate(ctx))
	assert.Equal(t, []string{longest}, schemasNamed(t, pool, []string{longest}), "Postgres kept all 63 bytes")

	// An empty name is the default, "freemium", not an error.
	s, err = freemium.NewPostgresStore(pool, &freemium.PostgresConfig{})
	require.NoError(t, err)
	assert.NotNil(t, s)
}

// schemasNamed returns the schemas among names that exist.
func schemasNamed(t *testing.T, pool *pgxpool.Pool, names []string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		"SELECT nspname::text FROM pg_namespace WHERE nspname::text = ANY($1::text[]) ORDER BY 1", names)
	require.NoError(t, err)
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return found
}

// The webhook reads a body of exactly 64 KiB, and checks its signature;
// one byte more is 413 before any signature check, whether or not the
// length was announced.
func TestSecurityWebhookBodyCap(t *testing.T) {
	good := fixture(t, "subscription_updated_active.json")
	padded := func(size int) []byte {
		require.Less(t, len(good), size)
		return append(append([]byte(nil), good...), bytes.Repeat([]byte(" "), size-len(good))...)
	}
	post := func(e *webhookEnv, body []byte, signature string, chunked bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(body))
		if chunked {
			req.ContentLength = -1
		}
		req.Header.Set("Stripe-Signature", signature)
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		return rec
	}
	for _, chunked := range []bool{false, true} {
		name := "ContentLength"
		if chunked {
			name = "Chunked"
		}
		t.Run(name, func(t *testing.T) {
			exact, over := padded(maxWebhookBody), padded(maxWebhookBody+1)
			require.Len(t, exact, 64*1024)
			require.Len(t, over, 64*1024+1)

			e := newWebhookEnv(t, freemium.NewMemoryStore())
			rec := post(e, exact, signPayload(exact, "whsec_someone_else", time.Now()), chunked)
			assert.Equal(t, http.StatusBadRequest, rec.Code, "64 KiB is read, and its signature checked: %s", rec.Body)
			assert.True(t, e.mirror("u1").SyncedAt.IsZero())

			rec = post(e, exact, signPayload(exact, webhookSecret, time.Now()), chunked)
			assert.Equal(t, http.StatusOK, rec.Code, "64 KiB, signed, is applied: %s", rec.Body)
			assert.Equal(t, freemium.StatusActive, e.status("u1", "sub_1"))

			e = newWebhookEnv(t, freemium.NewMemoryStore())
			rec = post(e, over, signPayload(over, webhookSecret, time.Now()), chunked)
			assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "64 KiB + 1, even signed, is refused: %s", rec.Body)
			assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
			assert.True(t, e.mirror("u1").SyncedAt.IsZero(), "nothing mirrored")

			rec = post(e, over, signPayload(over, "whsec_someone_else", time.Now()), chunked)
			assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "the cap comes before the signature")
		})
	}
}

// signPayload is the Stripe-Signature header of payload signed with secret at ts.
func signPayload(payload []byte, secret string, ts time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: ts}).Header
}

// A plan name and an upgrade URL that carry markup and script reach the
// email, through the Gate, its outbox and ResendNotifier, escaped and
// neutralised, in every kind of email.
func TestSecurityEmailEscapingEndToEnd(t *testing.T) {
	ctx := context.Background()
	const plan = `<script>alert("plan")</script>`
	resend := newResendStandIn(t)
	t0 := time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)
	subs := freemiumtest.NewSubscriptions()
	subs.Subscribe("u1", "price_x", t0.Add(-time.Hour), t0.AddDate(0, 1, 0))
	cfg := freemium.Config{
		Store: freemium.NewMemoryStore(), Subscriptions: subs, Notifier: newResendNotifier(t, resendConfig(resend)),
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
	require.Len(t, resend.delivered(), 1)
	html := resend.delivered()[0].Body.HTML
	assertNeutralised(t, html, plan)
	assert.Contains(t, html, escapedPlan, "the limit-reached email names the plan, escaped")
	assert.Contains(t, html, `href="https://app.example/up?a=%22%3e%3cscript%3e`, "the URL does not break out of its attribute")

	// Each kind, and other dangerous schemes, straight through the notifier.
	notifier := newResendNotifier(t, resendConfig(resend))
	for _, kind := range []freemium.NotificationKind{freemium.UsageWarning, freemium.UpgradePrompt, freemium.LimitReached} {
		for i, url := range []string{
			"javascript:alert(1)",
			" javascript:alert(1)",
			"java\tscript:alert(1)",
			"JAVASCRIPT:alert(1)",
			"vbscript:msgbox(1)",
			"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
		} {
			n := upgradePrompt("ntf_" + string(kind) + "_" + string(rune('a'+i)))
			n.Kind = kind
			n.Usage.Plan = plan
			n.UpgradeURL = url
			_, err := notifier.Send(ctx, n)
			require.NoError(t, err, "%s %q", kind, url)
			all := resend.delivered()
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
