package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

// The demo's /metrics serves the gate's metrics in Prometheus's format:
// after a free report and a block, the decisions, the durations and the
// prompt waiting in the outbox are there.
func TestMetricsScrape(t *testing.T) {
	tel, err := newTelemetry()
	require.NoError(t, err)
	defer tel.close(context.Background())
	a, err := newApp(options{Store: freemium.NewMemoryStore(), Subscriptions: freemiumtest.NewSubscriptions(), PriceID: demoPriceID,
		Notifier: freemiumtest.NewNotifier(), BaseURL: "http://reports.example", Observer: tel.observer})
	require.NoError(t, err)
	require.NoError(t, tel.observe(a.gate))
	a.metrics = tel.handler
	srv := httptest.NewServer(a.routes())
	defer srv.Close()
	c := client{t: t, url: srv.URL}
	c.do(http.MethodPost, "/api/reports", "alice")
	c.do(http.MethodPost, "/api/reports", "alice")

	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	text := string(body)
	t.Logf("scrape:\n%s", text)
	assert.Contains(t, text, `freemium_decisions_total{freemium_outcome="allowed",freemium_plan="free"`)
	assert.Contains(t, text, `freemium_decisions_total{freemium_outcome="blocked",freemium_plan="free",freemium_reason="subscription_required"`)
	assert.Contains(t, text, `freemium_operation_duration_seconds_bucket{freemium_operation="reserve"`)
	assert.Contains(t, text, `freemium_notifications_enqueued_total{freemium_notification_kind="upgrade_prompt"`)
	assert.Contains(t, text, "freemium_outbox_pending{")
}
