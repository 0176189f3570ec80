package freemium_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
)

// A new user whose free first report is unused is not at 100% and not
// warned; once the report is done, the meter is full.
func TestMeterFreeReportAvailable(t *testing.T) {
	e := newMWEnv(t, freemium.Plan{FirstReportFree: true, Period: freemium.Lifetime})
	u := e.usage("new")
	assert.True(t, u.FirstReportAvailable)
	assert.Zero(t, u.Percentage)
	assert.False(t, u.Warning)

	h := e.gate.Middleware(freemium.MiddlewareOptions{UserID: headerUser,
		Estimate: func(*http.Request) int64 { return 2000 }})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		freemium.ReportTokens(r.Context(), 1750)
		w.Write([]byte("report"))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request(http.MethodPost, "/reports", "new"))
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, "1750", rec.Header().Get("X-Usage-Used"), "the free report's tokens, reported before the answer")
	assert.Equal(t, "0", rec.Header().Get("X-Usage-Remaining"))

	u = e.usage("new")
	assert.False(t, u.FirstReportAvailable)
	assert.True(t, u.FirstReportUsed)
	assert.Equal(t, 100.0, u.Percentage)
	assert.Equal(t, int64(1750), u.Used)
}

// An admitted response's headers count the request, and carry the warning
// when it reaches WarnAt; the handler reads the Decision that admitted it.
func TestMiddlewareHeadersCountTheRequest(t *testing.T) {
	e := newMWEnv(t, freemium.Plan{Limit: 10_000})
	require.NoError(t, e.gate.Record(context.Background(), "u1", 6_500, ""))
	var seen freemium.Decision
	var ok bool
	report := func(tokens int64) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen, ok = freemium.DecisionFrom(r.Context())
			if tokens > 0 {
				freemium.ReportTokens(r.Context(), tokens)
			}
			// A handler that writes nothing answers an implicit 200.
		})
	}
	mw := e.gate.Middleware(freemium.MiddlewareOptions{UserID: headerUser,
		Estimate: func(*http.Request) int64 { return 1000 }})

	rec := httptest.NewRecorder()
	mw(report(0)).ServeHTTP(rec, request(http.MethodPost, "/x", "u1"))
	require.Equal(t, 200, rec.Code)
	require.True(t, ok)
	assert.True(t, seen.Allowed)
	assert.Equal(t, int64(6_500), seen.Used, "the Decision is the usage before the request")
	assert.Equal(t, "7500", rec.Header().Get("X-Usage-Used"), "the estimate, with no tokens reported")
	assert.Equal(t, "2500", rec.Header().Get("X-Usage-Remaining"))
	assert.Empty(t, rec.Header().Get("X-Usage-Warning"), "75% < 80%")

	rec = httptest.NewRecorder()
	mw(report(900)).ServeHTTP(rec, request(http.MethodPost, "/x", "u1"))
	assert.Equal(t, "8400", rec.Header().Get("X-Usage-Used"), "the reported tokens")
	assert.Equal(t, "true", rec.Header().Get("X-Usage-Warning"), "84% crosses 80%")
	assert.Equal(t, int64(8_400), e.usage("u1").Used, "the usage JSON agrees")

	_, ok = freemium.DecisionFrom(context.Background())
	assert.False(t, ok, "outside a gated request")
}

// Percentages are rounded for JSON: no float noise.
func TestUsagePercentageRounded(t *testing.T) {
	e := newMWEnv(t, freemium.Plan{Limit: 1000})
	require.NoError(t, e.gate.Record(context.Background(), "u1", 18, "")) // 1.7999999999999998 unrounded
	rec := httptest.NewRecorder()
	e.gate.UsageHandler(headerUser).ServeHTTP(rec, request(http.MethodGet, "/api/usage", "u1"))
	assert.Contains(t, rec.Body.String(), `"percentage":1.8,`)
	assert.Contains(t, rec.Body.String(), `"first_report_available":false`)

	require.NoError(t, e.gate.Record(context.Background(), "u2", 2, ""))
	u := e.usage("u2")
	var buf bytes.Buffer
	require.NoError(t, json.NewEncoder(&buf).Encode(u))
	assert.Contains(t, buf.String(), `"percentage":0.2,`)
}
