package stripesub_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
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

// pack is the top-up of the fixtures: price_pack, 10,000 tokens.
var pack = freemium.TopUp{PriceID: "price_pack", Tokens: 10_000}

func newTopUpEnv(t *testing.T, store freemium.Store) *webhookEnv {
	return newWebhookEnvWith(t, store, func(c *freemium.Config) { c.TopUps = []freemium.TopUp{pack} })
}

// credits is the user's credits as the Gate reports them.
func (e *webhookEnv) credits(user string) int64 {
	e.t.Helper()
	u, err := e.gate.Usage(context.Background(), user)
	require.NoError(e.t, err)
	return u.Credits
}

// A paid top-up's checkout.session.completed, delivered five times at
// once, and its async_payment_succeeded too, grant the pack once; the
// session's customer becomes the user's.
func TestWebhookTopUpGrantsOnce(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		e := newTopUpEnv(t, store)
		completed := fixture(t, "checkout_session_topup_completed.json")
		succeeded := []byte(strings.NewReplacer("u4", "u3", "cus_4", "cus_3", "pi_4", "pi_3").Replace(string(fixture(t, "checkout_session_async_payment_succeeded.json"))))
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				body := completed
				if i == 5 {
					body = succeeded
				}
				rec := e.deliver(body, webhookSecret, time.Now())
				assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			})
		}
		wg.Wait()
		assert.Equal(t, int64(10_000), e.credits("u3"))
		entries, err := e.gate.Ledger(context.Background(), "u3", webhookT0, webhookT0.Add(time.Hour))
		require.NoError(t, err)
		require.Len(t, entries, 1)
		assert.Equal(t, freemium.LedgerGrant, entries[0].Kind)
		assert.Equal(t, "top-up price_pack", entries[0].Reason)
		user, err := store.CustomerUser(context.Background(), "cus_3")
		require.NoError(t, err)
		assert.Equal(t, "u3", user, "the session's customer is linked")
	})
}

// A bank debit's session completes unpaid: nothing is granted until its
// checkout.session.async_payment_succeeded.
func TestWebhookTopUpAsyncPayment(t *testing.T) {
	e := newTopUpEnv(t, freemium.NewMemoryStore())
	e.send("checkout_session_topup_pending.json")
	assert.Equal(t, int64(0), e.credits("u4"), "unpaid")
	e.send("checkout_session_async_payment_succeeded.json")
	assert.Equal(t, int64(10_000), e.credits("u4"))
}

// A refund takes back what is left of the pack, once; the tokens spent
// stay spent. A refund of a payment that bought no top-up is ignored.
func TestWebhookRefundRevokesTheUnspentPart(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		e := newTopUpEnv(t, store)
		e.send("checkout_session_topup_completed.json")
		e.mirrorFree("u3")
		ctx := context.Background()
		require.NoError(t, e.gate.MarkFirstReportUsed(ctx, "u3"))
		r, err := e.gate.Reserve(ctx, "u3", 2500)
		require.NoError(t, err)
		require.True(t, r.OK(), "the pack pays for a report")
		require.NoError(t, r.Commit(ctx, 2500))
		e.send("charge_refunded.json")
		e.send("charge_refunded.json")
		assert.Equal(t, int64(0), e.credits("u3"))
		entries, err := e.gate.Ledger(ctx, "u3", webhookT0, webhookT0.Add(time.Hour))
		require.NoError(t, err)
		var revoked int64
		for _, en := range entries {
			if en.Kind == freemium.LedgerRevoke {
				revoked += en.Tokens
			}
		}
		assert.Equal(t, int64(-7_500), revoked, "only the unspent part, once")
		u, err := e.gate.Usage(ctx, "u3")
		require.NoError(t, err)
		assert.Equal(t, int64(2500), u.Used, "what was spent stays used")

		other := bytes.ReplaceAll(fixture(t, "charge_refunded.json"), []byte("pi_3"), []byte("pi_other"))
		rec := e.deliver(other, webhookSecret, time.Now())
		assert.Equal(t, http.StatusOK, rec.Code)
	})
}

// A refund delivered before the payment's completed event: the completed
// event, and a reload of the success page, grant nothing.
func TestWebhookRefundBeforeTheGrant(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		e := newTopUpEnv(t, store)
		e.mirrorFree("u3")
		require.NoError(t, e.store.LinkCustomer(context.Background(), "u3", "cus_3", webhookT0))
		e.send("charge_refunded.json")
		e.send("checkout_session_topup_completed.json")
		assert.Equal(t, int64(0), e.credits("u3"))
		require.NoError(t, e.gate.ApplyTopUp(context.Background(),
			freemium.TopUpPayment{ID: "pi_3", PriceID: "price_pack", UserID: "u3", CustomerID: "cus_3"}))
		assert.Equal(t, int64(0), e.credits("u3"), "as CompleteCheckout would, on a reload")
		entries, err := e.gate.Ledger(context.Background(), "u3", webhookT0, webhookT0.Add(time.Hour))
		require.NoError(t, err)
		assert.Empty(t, entries, "nothing granted, nothing revoked")
	})
}

// A session a promotion code made free has no payment: it is granted
// once, keyed by the session.
func TestWebhookTopUpWithoutPayment(t *testing.T) {
	e := newTopUpEnv(t, freemium.NewMemoryStore())
	free := bytes.ReplaceAll(fixture(t, "checkout_session_topup_completed.json"), []byte(`"payment_status": "paid"`), []byte(`"payment_status": "no_payment_required"`))
	free = bytes.ReplaceAll(free, []byte(`"payment_intent": "pi_3"`), []byte(`"payment_intent": null`))
	for range 2 {
		require.Equal(t, http.StatusOK, e.deliver(free, webhookSecret, time.Now()).Code)
	}
	assert.Equal(t, int64(10_000), e.credits("u3"))
	entries, err := e.gate.Ledger(context.Background(), "u3", webhookT0, webhookT0.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "topup:cs_topup_1", entries[0].Key)
}

// A top-up session of a price not in Config.TopUps grants nothing and is
// answered 200 (Stripe cannot fix it by retrying); one not made by
// TopUpURL (no user in its metadata) is ignored.
func TestWebhookTopUpOfAnUnknownPrice(t *testing.T) {
	e := newTopUpEnv(t, freemium.NewMemoryStore())
	unknown := bytes.ReplaceAll(fixture(t, "checkout_session_topup_completed.json"), []byte(`"freemium_top_up": "price_pack"`), []byte(`"freemium_top_up": "price_other"`))
	rec := e.deliver(unknown, webhookSecret, time.Now())
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	foreign := bytes.ReplaceAll(fixture(t, "checkout_session_topup_completed.json"), []byte(`"user_id": "u3",`), nil)
	rec = e.deliver(foreign, webhookSecret, time.Now())
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, int64(0), e.credits("u3"))
}

// TopUpURL creates a payment-mode session for the pack, naming the user
// and the price, with a new customer; CompleteCheckout on the page it
// returns to grants the pack at once, and the webhook after it grants
// nothing more.
func TestTopUpCheckoutAndCompletion(t *testing.T) {
	stripe := stripetest.New(t)
	checker := stripetest.Checker(t, stripesub.Config{APIKey: stripetest.Key, BackendURL: stripe.URL()})
	clock := freemiumtest.NewClock(webhookT0)
	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Subscriptions: checker, Now: clock.Now,
		TopUps: []freemium.TopUp{pack}})
	require.NoError(t, err)
	ctx := context.Background()
	params := freemium.CheckoutParams{SuccessURL: "https://app.example/ok?session={CHECKOUT_SESSION_ID}"}
	link, err := g.TopUpURL(ctx, "u3", "price_pack", params)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(link, "https://"), link)
	form := stripe.Checkouts()[0]
	assert.Equal(t, "payment", form.Get("mode"))
	assert.Equal(t, "price_pack", form.Get("line_items[0][price]"))
	assert.Equal(t, "u3", form.Get("client_reference_id"))
	assert.Equal(t, "u3", form.Get("metadata[user_id]"))
	assert.Equal(t, "price_pack", form.Get("metadata[freemium_top_up]"))
	assert.Equal(t, "u3", form.Get("payment_intent_data[metadata][user_id]"))
	assert.Equal(t, "always", form.Get("customer_creation"))

	_, err = g.TopUpURL(ctx, "u3", "price_pro", params)
	assert.ErrorIs(t, err, freemium.ErrUnknownTopUp)
	_, err = g.TopUpURL(ctx, "u3", "price_pack", freemium.CheckoutParams{})
	assert.ErrorContains(t, err, "SuccessURL")
	assert.Len(t, stripe.Checkouts(), 1, "no session for a refused call")

	assert.Error(t, g.CompleteCheckout(ctx, "u3", "cs_test_1"), "not complete yet")
	stripe.Complete("cs_test_1", "cus_3")
	assert.Error(t, g.CompleteCheckout(ctx, "u9", "cs_test_1"), "another user's session")
	require.NoError(t, g.CompleteCheckout(ctx, "u3", "cs_test_1"))
	require.NoError(t, g.CompleteCheckout(ctx, "u3", "cs_test_1"), "again: nothing more")
	u, err := g.Usage(ctx, "u3")
	require.NoError(t, err)
	assert.Equal(t, int64(10_000), u.Credits)

	// The webhook of the same payment, after the page: still once.
	h := stripesub.WebhookHandler(g, stripesub.WebhookConfig{Secret: webhookSecret})
	e := &webhookEnv{t: t, gate: g, handler: h}
	body := bytes.ReplaceAll(fixture(t, "checkout_session_topup_completed.json"), []byte("pi_3"), []byte("pi_cs_test_1"))
	require.Equal(t, http.StatusOK, e.deliver(body, webhookSecret, time.Now()).Code)
	assert.Equal(t, int64(10_000), e.credits("u3"))
}

// Against stripe-mock: the top-up session is a valid request.
func TestTopUpURLStripeMock(t *testing.T) {
	checker := stripeMockChecker(t)
	link, err := checker.TopUpURL(context.Background(), "u1", "price_123", freemium.CheckoutParams{
		SuccessURL: "https://app.example/ok", CancelURL: "https://app.example/pricing", Email: "u1@example.com"})
	require.NoError(t, err, "stripe-mock validates the request against API 2023-10-16")
	assert.True(t, strings.HasPrefix(link, "https://"), "link %q", link)
}
