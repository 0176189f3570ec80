package stripesub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/stripesub"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// maxWebhookBody is the webhook handler's cap on a body: 64 KiB.
const maxWebhookBody = 64 << 10

// How FuzzStripeWebhook signs the body it posts.
const (
	signNow          = iota // signed with the endpoint's secret, now
	signNone                // no Stripe-Signature header
	signFuzzedHeader        // the fuzzed header, as is
	signWrongSecret         // signed with another secret
	signStale               // signed 10 minutes ago, past the tolerance
	signTampered            // signed, and a byte added to the body after
	signPlusHeader          // a good signature followed by the fuzzed header
	signPadOver             // signed, and padded with spaces to 64 KiB + 1
	signPadExact            // signed, and padded with spaces to exactly 64 KiB
	signModes
)

// webhookNames are the users and customers a webhook body names, read as
// loosely as stripe-go reads them (encoding/json, fields matched without
// regard to case).
type webhookNames struct {
	Data struct {
		Object struct {
			Metadata          map[string]string `json:"metadata"`
			ClientReferenceID string            `json:"client_reference_id"`
			Customer          json.RawMessage   `json:"customer"`
		} `json:"object"`
	} `json:"data"`
}

func (n webhookNames) users() []string {
	users := []string{"u1", "u2"}
	if u, ok := n.Data.Object.Metadata["user_id"]; ok {
		users = append(users, u)
	}
	return append(users, n.Data.Object.ClientReferenceID)
}

func (n webhookNames) customers() []string {
	customers := []string{"cus_1", "cus_2"}
	var id string
	var obj struct {
		ID string `json:"id"`
	}
	switch {
	case json.Unmarshal(n.Data.Object.Customer, &id) == nil:
		customers = append(customers, id)
	case json.Unmarshal(n.Data.Object.Customer, &obj) == nil:
		customers = append(customers, obj.ID)
	}
	return customers
}

// FuzzStripeWebhook posts any body, signed or not, to the webhook handler
// of a Gate on a MemoryStore. It never panics and answers 200, 400, 413 or
// 500. A refused delivery (400, 413) changes nothing; a correctly signed,
// well-formed event of stripe-go's API version is never refused; a user ID
// the Gate would refuse is never mirrored nor linked; after a 200 every
// user the event names can still be loaded, checked and metered, in a
// window that holds now. A top-up grants at most its pack, never on a
// refused delivery nor to a user ID the Gate refuses.
func FuzzStripeWebhook(f *testing.F) {
	fixtures, err := filepath.Glob(filepath.Join("testdata", "stripe", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range fixtures {
		body, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for mode := range uint8(signModes) {
			f.Add(body, mode, "t=1,v1=00")
		}
	}
	f.Add([]byte(`{}`), uint8(signNow), "")
	f.Add([]byte(`not json`), uint8(signFuzzedHeader), "t=notanumber,v1=zz")
	f.Add([]byte(`{"api_version":"2023-10-16"}`), uint8(signFuzzedHeader), "t=1,v1=,v0=abc,,=")
	f.Fuzz(func(t *testing.T, body []byte, mode uint8, header string) {
		mode %= signModes
		clock := freemiumtest.NewClock(webhookT0.Add(time.Minute))
		store := freemium.NewMemoryStore()
		g, err := freemium.New(freemium.Config{
			Store: store, Subscriptions: freemiumtest.NewSubscriptions(), Now: clock.Now,
			Free:               freemium.Plan{FirstReportFree: true},
			Plans:              []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000, Period: freemium.BillingCycle}},
			SubscriptionMaxAge: 24 * time.Hour,
			Logger:             slog.New(slog.DiscardHandler),
			TopUps:             []freemium.TopUp{pack},
		})
		if err != nil {
			t.Fatal(err)
		}
		handler := stripesub.WebhookHandler(g, stripesub.WebhookConfig{Secret: webhookSecret})

		sign := func(payload []byte, secret string, ts time.Time) string {
			return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: ts}).Header
		}
		var sig string
		refused := false // the signature cannot verify
		switch mode {
		case signNow:
			sig = sign(body, webhookSecret, time.Now())
		case signNone:
			refused = true
		case signFuzzedHeader:
			sig, refused = header, true // forging an HMAC-SHA256 is not in the fuzzer's reach
		case signWrongSecret:
			sig, refused = sign(body, "whsec_someone_else", time.Now()), true
		case signStale:
			sig, refused = sign(body, webhookSecret, time.Now().Add(-10*time.Minute)), true
		case signTampered:
			sig, refused = sign(body, webhookSecret, time.Now()), true
			body = append(body[:len(body):len(body)], ' ')
		case signPlusHeader:
			sig = sign(body, webhookSecret, time.Now()) + "," + header
		case signPadOver, signPadExact:
			size := maxWebhookBody + 1
			if mode == signPadExact {
				size = maxWebhookBody
			}
			if len(body) < size {
				body = append(body[:len(body):len(body)], bytes.Repeat([]byte(" "), size-len(body))...)
			}
			sig = sign(body, webhookSecret, time.Now())
		}
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(body))
		if mode != signNone {
			req.Header.Set("Stripe-Signature", sig)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)

		status := rec.Code
		switch status {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusInternalServerError:
		default:
			t.Fatalf("status %d, want 200, 400, 413 or 500; body %s", status, rec.Body)
		}
		if over := len(body) > maxWebhookBody; over != (status == http.StatusRequestEntityTooLarge) {
			t.Fatalf("a body of %d bytes answered %d: 413 is for bodies over %d bytes, and only for them", len(body), status, maxWebhookBody)
		}
		if refused && status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
			t.Fatalf("a delivery whose signature cannot verify (mode %d) answered %d", mode, status)
		}
		if mode == signNow || mode == signPadExact {
			var ev stripe.Event
			wellFormed := json.Unmarshal(body, &ev) == nil && ev.APIVersion == stripe.APIVersion &&
				ev.Data != nil && len(ev.Data.Raw) > 0
			if wellFormed && status == http.StatusBadRequest {
				t.Fatalf("a correctly signed event of API version %s, with data, was refused: %s", stripe.APIVersion, rec.Body)
			}
		}
		if status != http.StatusOK {
			var problem map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &problem); err != nil || problem["status"] != float64(status) {
				t.Fatalf("a %d answered %q, not a problem document: %v", status, rec.Body, err)
			}
			if strings.Contains(rec.Body.String(), webhookSecret) {
				t.Fatalf("the answer quotes the signing secret: %s", rec.Body)
			}
		}

		var names webhookNames
		_ = json.Unmarshal(body, &names) // wrong types leave the other fields set
		ctx := context.Background()
		now := clock.Now()
		for _, user := range names.users() {
			st, err := store.Load(ctx, user, now, func(freemium.Account) freemium.Window {
				return freemium.Window{Start: now, End: now.Add(time.Hour)}
			})
			if err != nil {
				t.Fatalf("Load(%q) after a %d: %v", user, status, err)
			}
			mirrored := !st.Account.Subscriptions.SyncedAt.IsZero() || st.Account.CustomerID != ""
			if mirrored && (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge) {
				t.Fatalf("a refused delivery (%d) mirrored user %q: %+v", status, user, st.Account)
			}
			if mirrored && !validUserID(user) {
				t.Fatalf("user ID %q, which the Gate refuses, was mirrored: %+v", user, st.Account)
			}
			if st.Credits != 0 && (status != http.StatusOK || !validUserID(user) || st.Credits > pack.Tokens) {
				t.Fatalf("a delivery answered %d granted user %q %d tokens (a pack is %d)", status, user, st.Credits, pack.Tokens)
			}
			if status != http.StatusOK || !validUserID(user) {
				continue
			}
			u, err := g.Usage(ctx, user)
			if err != nil {
				t.Fatalf("Usage(%q) after a 200: %v", user, err)
			}
			if slices.ContainsFunc(st.Account.Subscriptions.Subscriptions, func(s freemium.MirroredSubscription) bool {
				return s.CurrentPeriodStart.Before(now.AddDate(-290, 0, 0)) // past what time.Duration spans: no billing window
			}) {
				continue
			}
			if !u.PeriodEnd.IsZero() && (u.PeriodStart.After(now) || !now.Before(u.PeriodEnd)) {
				t.Fatalf("after a 200, user %q's period [%v, %v) does not hold now %v; mirror %+v", user, u.PeriodStart, u.PeriodEnd, now, st.Account.Subscriptions)
			}
			res, err := g.Reserve(ctx, user, 1)
			if err != nil {
				t.Fatalf("Reserve(%q) after a 200: %v", user, err)
			}
			if res.OK() {
				if err := res.Commit(ctx, 1); err != nil {
					t.Fatalf("Commit for %q after a 200: %v", user, err)
				}
			}
		}
		for _, customer := range names.customers() {
			user, err := store.CustomerUser(ctx, customer)
			if err != nil {
				t.Fatalf("CustomerUser(%q): %v", customer, err)
			}
			if user != "" && (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge) {
				t.Fatalf("a refused delivery (%d) linked customer %q to %q", status, customer, user)
			}
			if user != "" && !validUserID(user) {
				t.Fatalf("customer %q was linked to user ID %q, which the Gate refuses", customer, user)
			}
		}
		if status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge {
			conv, err := store.Conversions(ctx, time.Unix(0, 0), now.AddDate(100, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if len(conv) != 0 {
				t.Fatalf("a refused delivery (%d) recorded conversions: %+v", status, conv)
			}
		}
	})
}

// validUserID is the Gate's rule for user IDs: 1 to 256 bytes of UTF-8
// without control characters.
func validUserID(s string) bool {
	return s != "" && len(s) <= 256 && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}
