package freemium_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

// A gated request shows the credits: the 402 problem carries them and the
// top-up on offer, the message offers it, and a served response's
// X-Usage-Credits counts the request's spend.
func TestCreditsInTheMiddleware(t *testing.T) {
	clock := freemiumtest.NewClock(freemiumtest.T0)
	pack := freemium.TopUp{PriceID: "price_pack", Tokens: 10_000}
	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Now: clock.Now,
		Free:   freemium.Plan{Name: "free", Limit: 1000, Period: freemium.CalendarMonth},
		TopUps: []freemium.TopUp{pack}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, g.Record(ctx, "u1", 1000, ""))
	h := g.Middleware(freemium.MiddlewareOptions{
		UserID:   func(r *http.Request) (string, error) { return r.Header.Get("X-User-ID"), nil },
		Estimate: func(*http.Request) int64 { return 300 },
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		freemium.ReportTokens(r.Context(), 250)
		w.WriteHeader(http.StatusOK)
	}))
	serve := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/reports", nil)
		req.Header.Set("X-User-ID", "u1")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := serve()
	require.Equal(t, http.StatusPaymentRequired, rec.Code)
	var p freemium.Problem
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	assert.Equal(t, freemium.ReasonLimitExceeded, p.Reason)
	assert.Equal(t, "You've reached your free tier limit. Upgrade to continue. Or buy 10,000 more tokens to go on now.", p.Detail)
	require.NotNil(t, p.TopUp)
	assert.Equal(t, pack.PriceID, p.TopUp.PriceID)
	assert.Equal(t, int64(0), p.Credits)
	assert.Empty(t, rec.Header().Get("X-Usage-Credits"))

	expires := freemiumtest.T0.Add(30 * 24 * time.Hour)
	require.NoError(t, g.Grant(ctx, "u1", 500, freemium.GrantOptions{Key: "bonus", ExpiresAt: expires}))
	rec = serve()
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "250", rec.Header().Get("X-Usage-Credits"), "500 less the request's 250")
	assert.Equal(t, "250", rec.Header().Get("X-Usage-Remaining"))

	rec = serve() // 300 estimated, 250 left
	require.Equal(t, http.StatusPaymentRequired, rec.Code)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	assert.Equal(t, freemium.ReasonEstimateExceedsRemaining, p.Reason)
	assert.Equal(t, int64(250), p.Credits)
	require.NotNil(t, p.CreditsExpireAt)
	assert.Equal(t, expires, *p.CreditsExpireAt)
	assert.Equal(t, "250", rec.Header().Get("X-Usage-Credits"))

	u, err := g.Usage(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(250), u.Credits)
	assert.Equal(t, expires, u.CreditsExpireAt)
	body, err := json.Marshal(u)
	require.NoError(t, err)
	assert.Contains(t, string(body), `"credits":250,"credits_expire_at":"`)
}

// Config.TopUps is validated: a price, a positive token count, no price
// shared with a plan or another top-up.
func TestTopUpsConfig(t *testing.T) {
	store := freemium.NewMemoryStore()
	plans := []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000}}
	for _, tc := range []struct {
		name   string
		topUps []freemium.TopUp
		want   string
	}{
		{"no price", []freemium.TopUp{{Tokens: 10}}, "Config.TopUps[0].PriceID is empty"},
		{"no tokens", []freemium.TopUp{{PriceID: "price_pack"}}, "Config.TopUps[0].Tokens is 0"},
		{"a plan's price", []freemium.TopUp{{PriceID: "price_pro", Tokens: 10}}, `"price_pro" is also in Config.Plans[0]`},
		{"twice", []freemium.TopUp{{PriceID: "p", Tokens: 10}, {PriceID: "p", Tokens: 20}}, `"p" is also in Config.TopUps[0]`},
		{"negative validity", []freemium.TopUp{{PriceID: "p", Tokens: 10, Validity: -time.Hour}}, "Validity is -1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := freemium.New(freemium.Config{Store: store, Plans: plans, TopUps: tc.topUps})
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// A soft-limited plan never spends credits, so they add nothing to what
// it shows as remaining.
func TestSoftLimitShowsNoRoomFromCredits(t *testing.T) {
	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(),
		Free: freemium.Plan{Name: "free", Limit: 100, SoftLimit: true}})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, g.Record(ctx, "u1", 60, ""))
	require.NoError(t, g.Grant(ctx, "u1", 500, freemium.GrantOptions{Key: "g"}))
	u, err := g.Usage(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(40), u.Remaining)
	assert.Equal(t, int64(500), u.Credits, "kept for a plan that spends them")
	require.NoError(t, g.Record(ctx, "u1", 100, ""))
	u, err = g.Usage(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(0), u.Remaining)
	assert.True(t, u.Overage)
	assert.Equal(t, int64(500), u.Credits, "not spent on overage")
}
