package stripesub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/stripesub"
)

const webhookSecret = "whsec_test_secret"

// webhookT0 is the creation time of the events in testdata/stripe.
var webhookT0 = time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)

// webhookEnv is a Gate with a fake checker (which counts the calls the
// webhook saves) and its webhook handler.
type webhookEnv struct {
	t        *testing.T
	store    freemium.Store
	subs     *freemiumtest.Subscriptions
	clock    *freemiumtest.Clock
	gate     *freemium.Gate
	handler  http.Handler
	observed *freemiumtest.Observer
}

// The handler tells the Gate's Observer of every delivery, by type (the
// types it reads, else "other") and outcome, and of the conversion one
// makes.
func TestWebhookObserved(t *testing.T) {
	e := newWebhookEnv(t, freemium.NewMemoryStore())
	e.mirrorFree("u1")
	e.sendEvent(subscriptionEvent(t, "evt_1", "customer.subscription.created", webhookT0, "sub_1", "active", "price_pro"))
	e.sendEvent(subscriptionEvent(t, "evt_1", "customer.subscription.created", webhookT0, "sub_1", "active", "price_pro"))
	e.sendEvent(subscriptionEvent(t, "evt_2", "invoice.paid", webhookT0, "sub_1", "active", "price_pro"))
	rec := e.deliver(subscriptionEvent(t, "evt_3", "customer.subscription.updated", webhookT0, "sub_1", "active", "price_pro"), "whsec_wrong", time.Now())
	require.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Equal(t, []freemium.Event{
		{Kind: freemium.EventConversion, Plan: "pro"},
		{Kind: freemium.EventWebhook, Type: "customer.subscription.created", Outcome: "applied"},
		{Kind: freemium.EventWebhook, Type: "customer.subscription.created", Outcome: "applied"}, // a duplicate changes nothing, but was read
		{Kind: freemium.EventWebhook, Type: "other", Outcome: "ignored"},
		{Kind: freemium.EventWebhook, Type: "unverified", Outcome: "rejected"},
	}, e.observed.Events())
}

func newWebhookEnv(t *testing.T, store freemium.Store) *webhookEnv {
	return newWebhookEnvWith(t, store, nil)
}

// newWebhookEnvWith is newWebhookEnv with the Gate's Config changed by
// config.
func newWebhookEnvWith(t *testing.T, store freemium.Store, config func(*freemium.Config)) *webhookEnv {
	e := &webhookEnv{t: t, store: store, subs: freemiumtest.NewSubscriptions(), clock: freemiumtest.NewClock(webhookT0.Add(time.Minute)),
		observed: freemiumtest.NewObserver()}
	cfg := freemium.Config{
		Store: store, Subscriptions: e.subs, Now: e.clock.Now,
		Free: freemium.Plan{FirstReportFree: true},
		Plans: []freemium.Plan{
			{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000, Period: freemium.BillingCycle},
			{Name: "basic", PriceIDs: []string{"price_basic"}, Limit: 100, Period: freemium.BillingCycle},
		},
		SubscriptionMaxAge: 24 * time.Hour, // webhooks keep the mirror current
		Logger:             slog.New(slog.DiscardHandler),
		Observer:           e.observed,
	}
	if config != nil {
		config(&cfg)
	}
	g, err := freemium.New(cfg)
	require.NoError(t, err)
	e.gate, e.handler = g, stripesub.WebhookHandler(g, stripesub.WebhookConfig{Secret: webhookSecret})
	return e
}

// fixture reads testdata/stripe/name.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "stripe", name))
	require.NoError(t, err)
	return b
}

// deliver posts payload signed with secret at ts, as Stripe does.
func (e *webhookEnv) deliver(payload []byte, secret string, ts time.Time) *httptest.ResponseRecorder {
	e.t.Helper()
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: ts})
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", signed.Header)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

// send delivers a fixture, signed now, and requires a 200.
func (e *webhookEnv) send(name string) {
	e.t.Helper()
	rec := e.deliver(fixture(e.t, name), webhookSecret, time.Now())
	require.Equal(e.t, http.StatusOK, rec.Code, "delivering %s: %s", name, rec.Body)
}

// subscriptionEvent is subscription_updated_active.json (u1's customer
// cus_1) made into event id of type typ, created at created, about
// subscription sub with status and an item for each price.
func subscriptionEvent(t *testing.T, id, typ string, created time.Time, sub, status string, prices ...string) []byte {
	t.Helper()
	var ev map[string]any
	require.NoError(t, json.Unmarshal(fixture(t, "subscription_updated_active.json"), &ev))
	ev["id"], ev["type"], ev["created"] = id, typ, created.Unix()
	obj := ev["data"].(map[string]any)["object"].(map[string]any)
	obj["id"], obj["status"] = sub, status
	items := []any{}
	for i, price := range prices {
		items = append(items, map[string]any{"id": fmt.Sprintf("si_%s_%d", sub, i), "object": "subscription_item",
			"price": map[string]any{"id": price, "object": "price"}})
	}
	obj["items"] = map[string]any{"object": "list", "data": items}
	b, err := json.Marshal(ev)
	require.NoError(t, err)
	return b
}

// sendEvent delivers an event made by subscriptionEvent, signed now, and
// requires a 200.
func (e *webhookEnv) sendEvent(payload []byte) {
	e.t.Helper()
	rec := e.deliver(payload, webhookSecret, time.Now())
	require.Equal(e.t, http.StatusOK, rec.Code, "delivering %s: %s", payload, rec.Body)
}

// notified lists the kinds of the notifications enqueued so far.
func (e *webhookEnv) notified() []freemium.NotificationKind {
	e.t.Helper()
	ns, err := e.store.Notifications(context.Background(), webhookT0.Add(-24*time.Hour), webhookT0.Add(24*time.Hour))
	require.NoError(e.t, err)
	var kinds []freemium.NotificationKind
	for _, n := range ns {
		kinds = append(kinds, n.Kind)
	}
	return kinds
}

// mirrorFree has the Gate mirror the user as on Free (no subscription), a
// minute before the fixtures' events, as a check of a free user does.
func (e *webhookEnv) mirrorFree(user string) {
	e.t.Helper()
	now := e.clock.Now()
	e.clock.Set(webhookT0.Add(-time.Minute))
	require.NoError(e.t, e.gate.Refresh(context.Background(), user)) // Usage writes nothing
	require.Equal(e.t, "free", e.plan(user))
	e.clock.Set(now)
}

// mirror is the user's mirrored subscription, read from the Store.
func (e *webhookEnv) mirror(user string) freemium.SubscriptionMirror {
	e.t.Helper()
	st, err := e.store.Load(context.Background(), user, e.clock.Now(), func(freemium.Account) freemium.Window {
		return freemium.Window{Start: webhookT0, End: webhookT0.Add(time.Hour)}
	})
	require.NoError(e.t, err)
	return st.Account.Subscriptions
}

// status is the mirrored status of the user's subscription subID, "" when
// the mirror does not hold it.
func (e *webhookEnv) status(user, subID string) freemium.SubscriptionStatus {
	e.t.Helper()
	for _, s := range e.mirror(user).Subscriptions {
		if s.ID == subID {
			return s.Status
		}
	}
	return ""
}

func (e *webhookEnv) plan(user string) string {
	e.t.Helper()
	u, err := e.gate.Usage(context.Background(), user)
	require.NoError(e.t, err)
	return u.Plan
}

func TestStripeWebhook(t *testing.T) {
	stores := testenv.Stores
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			t.Run("AppliesAndChecksMakeNoCalls", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				e.mirrorFree("u1")
				calls := e.subs.Calls()
				e.send("subscription_updated_active.json")
				assert.Equal(t, "pro", e.plan("u1"))
				d, err := e.gate.Check(context.Background(), "u1", 1000)
				require.NoError(t, err)
				assert.True(t, d.Allowed)
				assert.Equal(t, time.Date(2026, 11, 15, 9, 59, 0, 0, time.UTC), d.PeriodStart, "the billing period from the event")
				assert.Equal(t, calls, e.subs.Calls(), "the webhook's mirror answers checks without asking the provider")
				conv, err := e.store.Conversions(context.Background(), webhookT0.Add(-time.Hour), webhookT0.Add(time.Hour))
				require.NoError(t, err)
				assert.Equal(t, []freemium.Conversion{{UserID: "u1", Plan: "pro", At: webhookT0}}, conv)
			})
			t.Run("DuplicateDeliveryChangesNothing", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				e.mirrorFree("u1")
				e.send("subscription_updated_active.json")
				first := e.mirror("u1")
				e.clock.Advance(time.Second)
				e.send("subscription_updated_active.json")
				again := e.mirror("u1")
				assert.Equal(t, first.Subscriptions, again.Subscriptions)
				conv, err := e.store.Conversions(context.Background(), webhookT0.Add(-time.Hour), webhookT0.Add(time.Hour))
				require.NoError(t, err)
				assert.Len(t, conv, 1, "one conversion for two deliveries")
			})
			t.Run("OutOfOrderDelivery", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				e.send("subscription_deleted.json") // created a day after the others
				e.send("subscription_updated_active.json")
				assert.Equal(t, freemium.StatusCanceled, e.status("u1", "sub_1"), "an older event does not undo a newer one")
			})
			t.Run("SameSecondGoesToTheActiveStatus", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				e.send("subscription_updated_active.json")
				e.send("subscription_created_incomplete.json") // same second, delivered late
				assert.Equal(t, freemium.StatusActive, e.status("u1", "sub_1"))
			})
			t.Run("LesserSubscriptionDoesNotDisplace", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				e.send("subscription_updated_active.json")
				e.send("subscription_other_canceled.json") // another, older subscription of the customer ends
				assert.Equal(t, freemium.StatusActive, e.status("u1", "sub_1"))
				assert.Equal(t, "pro", e.plan("u1"))
			})
			// Issue 15, case 1: a second subscription on a price no plan
			// lists (an add-on) left a paying customer on Free.
			t.Run("AddOnSubscriptionKeepsThePlan", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				e.mirrorFree("u1")
				e.send("subscription_updated_active.json")
				require.NoError(t, e.gate.MarkFirstReportUsed(context.Background(), "u1"))
				e.sendEvent(subscriptionEvent(t, "evt_addon", "customer.subscription.created", webhookT0.Add(time.Minute), "sub_addon", "active", "price_addon"))
				assert.Equal(t, "pro", e.plan("u1"))
				d, err := e.gate.Check(context.Background(), "u1", 100)
				require.NoError(t, err)
				assert.True(t, d.Allowed, "%+v", d)
				e.sendEvent(subscriptionEvent(t, "evt_addon_renewed", "customer.subscription.updated", webhookT0.Add(2*time.Minute), "sub_addon", "active", "price_addon"))
				assert.Equal(t, "pro", e.plan("u1"), "after the add-on renews")
				assert.Empty(t, e.notified(), "no upgrade prompt to a paying customer")
			})
			// Issue 15, case 2: the plan's price on the second item.
			t.Run("PlanPriceOnTheSecondItem", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				e.mirrorFree("u1")
				e.sendEvent(subscriptionEvent(t, "evt_items", "customer.subscription.updated", webhookT0, "sub_1", "active", "price_seats", "price_pro"))
				assert.Equal(t, "pro", e.plan("u1"))
			})
			// Issue 15, case 3: a double checkout, one of the two canceled.
			t.Run("CancelingOneOfTwoKeepsTheOther", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				e.mirrorFree("u1")
				e.send("subscription_updated_active.json")
				e.sendEvent(subscriptionEvent(t, "evt_b", "customer.subscription.created", webhookT0.Add(time.Minute), "sub_b", "active", "price_basic"))
				assert.Equal(t, "pro", e.plan("u1"), "the better plan of the two")
				e.sendEvent(subscriptionEvent(t, "evt_b_deleted", "customer.subscription.deleted", webhookT0.Add(2*time.Minute), "sub_b", "canceled", "price_basic"))
				calls := e.subs.Calls()
				assert.Equal(t, "pro", e.plan("u1"), "the other subscription still places the user")
				d, err := e.gate.Check(context.Background(), "u1", 1000)
				require.NoError(t, err)
				assert.True(t, d.Allowed, "%+v", d)
				assert.Equal(t, calls, e.subs.Calls(), "without asking the provider")
				assert.Empty(t, e.notified())
			})
			t.Run("CheckoutLinksTheCustomer", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				e.send("subscription_updated_by_customer.json") // no metadata, customer unknown: ignored
				assert.True(t, e.mirror("u2").SyncedAt.IsZero())
				e.send("checkout_session_completed.json")
				user, err := e.store.CustomerUser(context.Background(), "cus_2")
				require.NoError(t, err)
				assert.Equal(t, "u2", user)
				e.send("subscription_updated_by_customer.json") // redelivered: now found by its customer
				assert.Equal(t, freemium.StatusActive, e.status("u2", "sub_2"))
				assert.Equal(t, "pro", e.plan("u2"))
				assert.Zero(t, e.subs.Calls())
			})
			t.Run("LinkWinsOverMetadata", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				// cus_1 belongs to u9; an event whose metadata names u1 (edited
				// metadata) must not give u1 u9's subscription.
				require.NoError(t, e.gate.LinkCustomer(context.Background(), "u9", "cus_1"))
				e.send("subscription_updated_active.json")
				assert.True(t, e.mirror("u1").SyncedAt.IsZero(), "u1 got nothing")
				assert.True(t, e.mirror("u9").SyncedAt.IsZero(), "and the disagreeing event is not applied to u9 either")
			})
			t.Run("CheckoutNotMadeByCheckoutURLIgnored", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				// A Payment Link lets anyone set client_reference_id; without
				// CheckoutURL's metadata the session links nothing.
				body := bytes.Replace(fixture(t, "checkout_session_completed.json"), []byte(`"user_id": "u2"`), []byte(`"user_id": "u7"`), 1)
				rec := e.deliver(body, webhookSecret, time.Now())
				require.Equal(t, http.StatusOK, rec.Code)
				user, err := e.store.CustomerUser(context.Background(), "cus_2")
				require.NoError(t, err)
				assert.Empty(t, user)
			})
			t.Run("EventOfTheSecondAFetchBeganIn", func(t *testing.T) {
				// A refresh that began at 10:00:00.3 saw the subscription
				// active; the user canceled at 10:00:00.7, an event Stripe
				// stamps 10:00:00. The cancellation must win.
				e := newWebhookEnv(t, newStore(t))
				e.subs.Set("u1", freemium.Subscription{ID: "sub_1", CustomerID: "cus_1", PriceIDs: []string{"price_pro"}, Status: freemium.StatusActive,
					CurrentPeriodStart: webhookT0.Add(-time.Minute), CurrentPeriodEnd: webhookT0.AddDate(0, 1, 0)})
				e.clock.Set(webhookT0.Add(300 * time.Millisecond))
				require.NoError(t, e.gate.Refresh(context.Background(), "u1"))
				require.Equal(t, freemium.StatusActive, e.status("u1", "sub_1"))
				canceled := bytes.Replace(fixture(t, "subscription_updated_active.json"), []byte(`"status": "active"`), []byte(`"status": "canceled"`), 1)
				require.Equal(t, http.StatusOK, e.deliver(canceled, webhookSecret, time.Now()).Code)
				assert.Equal(t, freemium.StatusCanceled, e.status("u1", "sub_1"))
			})
			t.Run("UnknownTypeIgnored", func(t *testing.T) {
				e := newWebhookEnv(t, newStore(t))
				e.send("invoice_paid.json")
				assert.True(t, e.mirror("u1").SyncedAt.IsZero())
			})
		})
	}
}

// Anything unsigned, tampered, stale or oversized is refused and changes
// nothing.
func TestStripeWebhookRefuses(t *testing.T) {
	good := fixture(t, "subscription_updated_active.json")
	tampered := bytes.Replace(good, []byte(`"price_pro"`), []byte(`"price_max"`), 1)
	require.NotEqual(t, good, tampered)
	otherVersion := bytes.Replace(good, []byte(`"2023-10-16"`), []byte(`"2025-03-31.basil"`), 1)
	huge := append(append([]byte(nil), good[:len(good)-2]...), []byte(`, "padding": "`+strings.Repeat("x", 70<<10)+`"}`)...)

	cases := []struct {
		name   string
		send   func(e *webhookEnv) *httptest.ResponseRecorder
		status int
	}{
		{"Unsigned", func(e *webhookEnv) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(good)))
			return rec
		}, http.StatusBadRequest},
		{"WrongSecret", func(e *webhookEnv) *httptest.ResponseRecorder {
			return e.deliver(good, "whsec_someone_else", time.Now())
		}, http.StatusBadRequest},
		{"Tampered", func(e *webhookEnv) *httptest.ResponseRecorder {
			signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: good, Secret: webhookSecret})
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(tampered))
			req.Header.Set("Stripe-Signature", signed.Header)
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)
			return rec
		}, http.StatusBadRequest},
		{"ReplayPastTolerance", func(e *webhookEnv) *httptest.ResponseRecorder {
			return e.deliver(good, webhookSecret, time.Now().Add(-6*time.Minute))
		}, http.StatusBadRequest},
		{"OtherAPIVersion", func(e *webhookEnv) *httptest.ResponseRecorder {
			return e.deliver(otherVersion, webhookSecret, time.Now())
		}, http.StatusBadRequest},
		{"Oversized", func(e *webhookEnv) *httptest.ResponseRecorder {
			return e.deliver(huge, webhookSecret, time.Now())
		}, http.StatusRequestEntityTooLarge},
		{"NotPost", func(e *webhookEnv) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			return rec
		}, http.StatusMethodNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newWebhookEnv(t, freemium.NewMemoryStore())
			rec := c.send(e)
			assert.Equal(t, c.status, rec.Code, rec.Body.String())
			assert.True(t, e.mirror("u1").SyncedAt.IsZero(), "nothing mirrored")
			assert.NotContains(t, rec.Body.String(), webhookSecret)
		})
	}
	// Still 5 minutes: a delivery signed 4 minutes ago is taken.
	e := newWebhookEnv(t, freemium.NewMemoryStore())
	assert.Equal(t, http.StatusOK, e.deliver(good, webhookSecret, time.Now().Add(-4*time.Minute)).Code)
}

func TestStripeWebhookStoreDownIs500(t *testing.T) {
	e := newWebhookEnv(t, downStore{freemium.NewMemoryStore()})
	rec := e.deliver(fixture(t, "subscription_updated_active.json"), webhookSecret, time.Now())
	assert.Equal(t, http.StatusInternalServerError, rec.Code, "Stripe retries a 500")
	var problem map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &problem))
	assert.Equal(t, "Internal Server Error", problem["title"])
}

func TestWebhookHandlerNeedsASecret(t *testing.T) {
	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore()})
	require.NoError(t, err)
	assert.PanicsWithValue(t, "stripesub: WebhookHandler: WebhookConfig.Secret is empty: set the endpoint's whsec_... secret",
		func() { stripesub.WebhookHandler(g, stripesub.WebhookConfig{}) })
}

// downStore is a MemoryStore whose reads and writes of the mirror fail.
type downStore struct{ *freemium.MemoryStore }

var errStoreDown = errors.New("store down")

func (downStore) CustomerUser(context.Context, string) (string, error) { return "", errStoreDown }

func (downStore) PutSubscriptions(context.Context, string, freemium.SubscriptionUpdate, time.Time) (bool, bool, error) {
	return false, false, errStoreDown
}
