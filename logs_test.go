package freemium_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

// logRecords is a JSON slog handler's output, record by record.
type logRecords struct{ buf bytes.Buffer }

func (l *logRecords) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(&l.buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logRecords) list(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(l.buf.String()) {
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		out = append(out, r)
	}
	return out
}

// The middleware logs attributes an operator can filter on: method,
// route, user and error; a client that went away is not an error.
func TestMiddlewareLogAttributes(t *testing.T) {
	var logs logRecords
	store := &flakyStore{MemoryStore: freemium.NewMemoryStore()}
	g, err := freemium.New(freemium.Config{Store: store, Free: freemium.Plan{Limit: 1000}, Logger: logs.logger()})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("POST /reports/{kind}", g.Middleware(freemium.MiddlewareOptions{UserID: headerUser})(http.NotFoundHandler()))
	store.down.Store(true)

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	mux.ServeHTTP(httptest.NewRecorder(), request(http.MethodPost, "/reports/q3", "u1").WithContext(gone))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, request(http.MethodPost, "/reports/q3", "u1"))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)

	records := logs.list(t)
	require.Len(t, records, 2)
	assert.Equal(t, "DEBUG", records[0]["level"], "a client gone: %v", records[0])
	assert.Equal(t, "ERROR", records[1]["level"])
	for _, r := range records {
		assert.Equal(t, "POST", r["http.request.method"])
		assert.Equal(t, "POST /reports/{kind}", r["http.route"])
		assert.Equal(t, "u1", r["user_id"])
		assert.Contains(t, r["err"], errStoreDown.Error())
	}
}

// Config.UserIDLogging hashes or drops user IDs in every record.
func TestUserIDLogging(t *testing.T) {
	for _, tc := range []struct {
		mode freemium.UserIDLogging
		want any // the user_id attribute; nil for none
	}{
		{freemium.LogUserID, "ann@example.com"},
		{freemium.HashUserID, "sha256:71d4f55f72fa128d"}, // printf ann@example.com | sha256sum
		{freemium.OmitUserID, nil},
	} {
		var logs logRecords
		store := &flakyStore{MemoryStore: freemium.NewMemoryStore()}
		g, err := freemium.New(freemium.Config{Store: store, Logger: logs.logger(), UserIDLogging: tc.mode})
		require.NoError(t, err)
		store.down.Store(true)
		h := g.Middleware(freemium.MiddlewareOptions{UserID: headerUser})(http.NotFoundHandler())
		h.ServeHTTP(httptest.NewRecorder(), request(http.MethodPost, "/x", "ann@example.com"))
		records := logs.list(t)
		require.Len(t, records, 1)
		assert.Equal(t, tc.want, records[0]["user_id"], "mode %d", tc.mode)
		if tc.mode != freemium.LogUserID {
			assert.NotContains(t, logs.buf.String(), "ann@example.com")
		}
	}
}

// A temporary delivery failure is a warning with the attempt and the next
// retry; one given up on is an error; nothing is logged twice.
func TestDeliveryLogLevels(t *testing.T) {
	var logs logRecords
	clock := freemiumtest.NewClock(time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC))
	notifier := freemiumtest.NewNotifier()
	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Notifier: notifier, Now: clock.Now,
		Free: freemium.Plan{FirstReportFree: true}, UpgradeURL: "https://example.com/up", Logger: logs.logger(),
		Delivery: freemium.DeliveryConfig{MaxAttempts: 2}})
	require.NoError(t, err)
	ctx := context.Background()
	r, err := g.Reserve(ctx, "u1", 10)
	require.NoError(t, err)
	require.NoError(t, r.Commit(ctx, 10))
	_, err = g.Check(ctx, "u1", 10) // blocked: an upgrade prompt is enqueued
	require.NoError(t, err)

	notifier.SetError(&freemium.NotifyError{Status: 503, Err: errStoreDown})
	sent, err := g.DispatchOnce(ctx)
	require.NoError(t, err, "a failed send is retried, not returned")
	require.Zero(t, sent)
	clock.Advance(2 * time.Hour)
	_, err = g.DispatchOnce(ctx)
	require.NoError(t, err)

	records := logs.list(t)
	require.Len(t, records, 2, "%s", &logs.buf)
	assert.Equal(t, "WARN", records[0]["level"])
	assert.Equal(t, float64(1), records[0]["attempt"])
	assert.NotEmpty(t, records[0]["next_retry"])
	assert.Equal(t, "u1", records[0]["user_id"])
	assert.Equal(t, "ERROR", records[1]["level"])
	assert.Equal(t, float64(2), records[1]["attempt"])
}
