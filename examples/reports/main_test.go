package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

func TestReportsFlow(t *testing.T) {
	clock := freemiumtest.NewClock(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	a, err := newApp(freemium.NewMemoryStore(), freemiumtest.NewSubscriptions(), clock.Now)
	require.NoError(t, err)
	srv := httptest.NewServer(a.routes())
	defer srv.Close()

	post := func(path, user string) (*http.Response, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, nil)
		require.NoError(t, err)
		if user != "" {
			req.Header.Set("X-User-ID", user)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}

	resp, body := post("/api/reports", "alice")
	require.Equal(t, http.StatusOK, resp.StatusCode, "the first report is free")
	assert.Equal(t, "Quarterly summary for alice", body["report"])

	resp, body = post("/api/reports", "alice")
	require.Equal(t, http.StatusPaymentRequired, resp.StatusCode, "a newcomer is blocked on the second report")
	assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	assert.Equal(t, string(freemium.ReasonSubscriptionRequired), body["reason"])
	assert.Equal(t, freemium.DefaultMessages.SubscriptionRequired, body["detail"])

	resp, _ = post("/api/subscribe", "alice")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// 20,000 tokens a period, 2,000 reserved and 1,750 used per report: 11 fit.
	for i := range 11 {
		resp, _ = post("/api/reports", "alice")
		require.Equal(t, http.StatusOK, resp.StatusCode, "pro report %d", i)
	}
	resp, body = post("/api/reports", "alice")
	require.Equal(t, http.StatusPaymentRequired, resp.StatusCode, "the pro allowance runs out")
	assert.Equal(t, string(freemium.ReasonLimitExceeded), body["reason"])

	resp, _ = post("/api/reports", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/usage", nil)
	require.NoError(t, err)
	req.Header.Set("X-User-ID", "alice")
	uresp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer uresp.Body.Close()
	var u freemium.Usage
	require.NoError(t, json.NewDecoder(uresp.Body).Decode(&u))
	assert.Equal(t, "pro", u.Plan)
	assert.Equal(t, int64(11*(estimatedTokens-250)), u.Used)
}
