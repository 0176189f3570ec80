package stripesub_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/freemiumkit/freemium"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"
)

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
