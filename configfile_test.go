package freemium_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
)

// statusOf is the status h answers a request by user u1.
func statusOf(h http.Handler, method, path string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request(method, path, "u1"))
	return rec.Code
}

// Config.Gated is the middleware's default; MiddlewareOptions.Gated, when
// given, replaces it.
func TestMiddlewareConfigGated(t *testing.T) {
	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Free: freemium.Plan{Limit: 0},
		Gated: []string{"POST /api/features/"}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

	byConfig := g.Middleware(freemium.MiddlewareOptions{UserID: headerUser})(ok)
	assert.Equal(t, 402, statusOf(byConfig, http.MethodPost, "/api/features/x"))
	assert.Equal(t, 200, statusOf(byConfig, http.MethodGet, "/api/other"))
	assert.Equal(t, 200, statusOf(byConfig, http.MethodGet, "/api/features/x"))

	byOptions := g.Middleware(freemium.MiddlewareOptions{UserID: headerUser, Gated: []string{"GET /api/other"}})(ok)
	assert.Equal(t, 200, statusOf(byOptions, http.MethodPost, "/api/features/x"))
	assert.Equal(t, 402, statusOf(byOptions, http.MethodGet, "/api/other"))
}

// New refuses Config.Gated patterns that would make Middleware panic.
func TestNewRejectsInvalidGated(t *testing.T) {
	tests := []struct {
		name  string
		gated []string
		want  string
	}{
		{"empty", []string{""}, `Config.Gated[0] ""`},
		{"bad wildcard", []string{"/a/", "/b/{x"}, `Config.Gated[1] "/b/{x"`},
		{"twice", []string{"POST /a/", "POST /a/"}, `Config.Gated[1] "POST /a/"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Gated: tc.gated})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
