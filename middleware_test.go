package freemium_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
)

// flakyStore is a MemoryStore whose Reserve, Load, CustomerUser and
// PutSubscriptions fail while down is set.
type flakyStore struct {
	*freemium.MemoryStore
	down atomic.Bool
}

var errStoreDown = errors.New("store down")

func (s *flakyStore) Reserve(ctx context.Context, h freemium.Hold, now time.Time) (freemium.ReserveResult, error) {
	if s.down.Load() {
		return freemium.ReserveResult{}, errStoreDown
	}
	return s.MemoryStore.Reserve(ctx, h, now)
}

func (s *flakyStore) Load(ctx context.Context, userID string, now time.Time, window func(freemium.Account) freemium.Window) (freemium.State, error) {
	if s.down.Load() {
		return freemium.State{}, errStoreDown
	}
	return s.MemoryStore.Load(ctx, userID, now, window)
}

func (s *flakyStore) CustomerUser(ctx context.Context, customerID string) (string, error) {
	if s.down.Load() {
		return "", errStoreDown
	}
	return s.MemoryStore.CustomerUser(ctx, customerID)
}

func (s *flakyStore) PutSubscriptions(ctx context.Context, userID string, u freemium.SubscriptionUpdate, now time.Time) (bool, bool, error) {
	if s.down.Load() {
		return false, false, errStoreDown
	}
	return s.MemoryStore.PutSubscriptions(ctx, userID, u, now)
}

type mwEnv struct {
	t     *testing.T
	store *flakyStore
	gate  *freemium.Gate
	clock *freemiumtest.Clock
}

func newMWEnv(t *testing.T, free freemium.Plan) *mwEnv {
	e := &mwEnv{t: t, store: &flakyStore{MemoryStore: freemium.NewMemoryStore()},
		clock: freemiumtest.NewClock(time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC))}
	g, err := freemium.New(freemium.Config{Store: e.store, Free: free, Now: e.clock.Now,
		UpgradeURL: "https://example.com/upgrade", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	e.gate = g
	return e
}

func headerUser(r *http.Request) (string, error) {
	if u := r.Header.Get("X-User-ID"); u != "" {
		return u, nil
	}
	return "", errors.New("no X-User-ID")
}

func (e *mwEnv) usage(user string) freemium.Usage {
	e.t.Helper()
	u, err := e.gate.Usage(context.Background(), user)
	require.NoError(e.t, err)
	return u
}

func request(method, path, user string) *http.Request {
	r := httptest.NewRequest(method, path, nil)
	if user != "" {
		r.Header.Set("X-User-ID", user)
	}
	return r
}

func TestMiddlewareOutcomes(t *testing.T) {
	monthly := freemium.Plan{Limit: 1000}
	tests := []struct {
		name       string
		plan       freemium.Plan
		opts       freemium.MiddlewareOptions
		storeDown  bool
		user       string
		handler    http.HandlerFunc
		wantStatus int
		wantCalled bool
		wantUsed   int64
		wantHeader bool
	}{
		{name: "allowed, nothing reported: the estimate is committed", plan: monthly, user: "u1",
			handler:    func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "report") },
			wantStatus: 200, wantCalled: true, wantUsed: 100, wantHeader: true},
		{name: "reported tokens larger than the estimate are committed", plan: monthly, user: "u1",
			handler: func(w http.ResponseWriter, r *http.Request) {
				freemium.ReportTokens(r.Context(), 300)
				freemium.ReportTokens(r.Context(), 50)
			},
			wantStatus: 200, wantCalled: true, wantUsed: 350, wantHeader: true},
		{name: "blocked: 402 and the handler does not run", plan: freemium.Plan{Limit: 50}, user: "u1",
			wantStatus: 402, wantHeader: true},
		{name: "no user: 401", plan: monthly, user: "",
			wantStatus: 401},
		{name: "invalid user ID: 401", plan: monthly, user: strings.Repeat("x", 300),
			wantStatus: 401},
		{name: "store down, fail closed: 503", plan: monthly, storeDown: true, user: "u1",
			wantStatus: 503},
		{name: "store down, fail open: served ungated", plan: monthly, storeDown: true, user: "u1",
			opts:       freemium.MiddlewareOptions{FailOpen: true},
			wantStatus: 200, wantCalled: true},
		{name: "handler 500: canceled", plan: monthly, user: "u1",
			handler:    func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) },
			wantStatus: 500, wantCalled: true, wantUsed: 0, wantHeader: true},
		{name: "handler 500 after spending tokens: the tokens are recorded", plan: monthly, user: "u1",
			handler: func(w http.ResponseWriter, r *http.Request) {
				freemium.ReportTokens(r.Context(), 70)
				w.WriteHeader(502)
			},
			wantStatus: 502, wantCalled: true, wantUsed: 70, wantHeader: true},
		{name: "handler 404: canceled (an error status is not billed)", plan: monthly, user: "u1",
			handler:    func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
			wantStatus: 404, wantCalled: true, wantUsed: 0, wantHeader: true},
		{name: "streaming handler flushes through", plan: monthly, user: "u1",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "partial")
				w.(http.Flusher).Flush()
				freemium.ReportTokens(r.Context(), 40)
			},
			wantStatus: 200, wantCalled: true, wantUsed: 40, wantHeader: true},
		{name: "ungated path: passes through", plan: freemium.Plan{Limit: 0}, user: "u1",
			opts:       freemium.MiddlewareOptions{Gated: []string{"POST /api/features/"}},
			handler:    func(w http.ResponseWriter, r *http.Request) {},
			wantStatus: 200, wantCalled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMWEnv(t, tt.plan)
			e.store.down.Store(tt.storeDown)
			opts := tt.opts
			opts.UserID = headerUser
			opts.Estimate = func(*http.Request) int64 { return 100 }
			called := false
			h := e.gate.Middleware(opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called = true
				if tt.handler != nil {
					tt.handler(w, r)
				}
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, request(http.MethodPost, "/api/reports", tt.user))
			assert.Equal(t, tt.wantStatus, rec.Code)
			assert.Equal(t, tt.wantCalled, called, "handler called")
			assert.Equal(t, tt.wantHeader, rec.Header().Get("X-Usage-Limit") != "", "X-Usage headers present")
			if tt.user == "u1" && !tt.storeDown {
				u := e.usage("u1")
				assert.Equal(t, tt.wantUsed, u.Used, "Used")
				assert.Equal(t, int64(0), u.Reserved, "no hold is left behind")
			}
		})
	}
}

func TestMiddlewareBlockedProblem(t *testing.T) {
	e := newMWEnv(t, freemium.Plan{Limit: 1000})
	require.NoError(t, e.gate.Record(context.Background(), "u1", 900, ""))
	h := e.gate.Middleware(freemium.MiddlewareOptions{UserID: headerUser,
		Estimate: func(*http.Request) int64 { return 200 }})(http.NotFoundHandler())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request(http.MethodPost, "/x", "u1"))
	require.Equal(t, http.StatusPaymentRequired, rec.Code)
	assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	assert.Equal(t, "900", rec.Header().Get("X-Usage-Used"))
	assert.Equal(t, "1000", rec.Header().Get("X-Usage-Limit"))
	assert.Equal(t, "100", rec.Header().Get("X-Usage-Remaining"))
	assert.Equal(t, "2026-12-01T00:00:00Z", rec.Header().Get("X-Usage-Reset"))
	var p map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	assert.Equal(t, map[string]any{
		"type": "urn:freemium:estimate_exceeds_remaining", "title": "Not enough tokens left", "status": float64(402),
		"detail": "This report needs about 200 tokens, more than the 100 left this period.", "reason": "estimate_exceeds_remaining",
		"plan": "free", "used": float64(900), "limit": float64(1000), "remaining": float64(100), "percentage": float64(90),
		"period_end": "2026-12-01T00:00:00Z", "upgrade_url": "https://example.com/upgrade", "credits": float64(0),
	}, p)

	custom := e.gate.Middleware(freemium.MiddlewareOptions{UserID: headerUser,
		Estimate: func(*http.Request) int64 { return 200 },
		Blocked: func(w http.ResponseWriter, r *http.Request, d freemium.Decision) {
			http.Redirect(w, r, d.UpgradeURL, http.StatusSeeOther)
		}})(http.NotFoundHandler())
	rec = httptest.NewRecorder()
	custom.ServeHTTP(rec, request(http.MethodPost, "/x", "u1"))
	assert.Equal(t, http.StatusSeeOther, rec.Code)
	assert.Equal(t, "https://example.com/upgrade", rec.Header().Get("Location"))
}

func TestMiddlewarePanicCancelsAndRepanics(t *testing.T) {
	e := newMWEnv(t, freemium.Plan{FirstReportFree: true})
	h := e.gate.Middleware(freemium.MiddlewareOptions{UserID: headerUser})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("model exploded")
	}))
	assert.PanicsWithValue(t, "model exploded", func() {
		h.ServeHTTP(httptest.NewRecorder(), request(http.MethodPost, "/x", "u1"))
	})
	u := e.usage("u1")
	assert.Equal(t, int64(0), u.Reserved)
	assert.False(t, u.FirstReportUsed, "the canceled first report is free again")
}

func TestMiddlewareClientGoneCancels(t *testing.T) {
	e := newMWEnv(t, freemium.Plan{Limit: 1000})
	h := e.gate.Middleware(freemium.MiddlewareOptions{UserID: headerUser})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel := r.Context().Value(cancelKey{}).(context.CancelFunc)
		cancel() // the client hangs up while the work runs
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := request(http.MethodPost, "/x", "u1")
	r = r.WithContext(context.WithValue(ctx, cancelKey{}, cancel))
	h.ServeHTTP(httptest.NewRecorder(), r)
	u := e.usage("u1")
	assert.Equal(t, int64(0), u.Used)
	assert.Equal(t, int64(0), u.Reserved, "the hold was canceled, though the request's context had ended")
}

type cancelKey struct{}

func TestMiddlewareGatesOnlyItsPatterns(t *testing.T) {
	e := newMWEnv(t, freemium.Plan{Limit: 0})
	h := e.gate.Middleware(freemium.MiddlewareOptions{UserID: headerUser, Gated: []string{"POST /api/features/"}})(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/api/features/summarize", 402},
		{http.MethodPost, "/api/features/", 402},
		{http.MethodGet, "/api/features/summarize", 200},
		{http.MethodPost, "/api/other", 200},
		{http.MethodPost, "/api/features", 200},    // the mux would redirect it: not gated
		{http.MethodPost, "/api//features/x", 200}, // the mux would clean it: not gated
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, request(tc.method, tc.path, "u1"))
		assert.Equal(t, tc.want, rec.Code, "%s %s", tc.method, tc.path)
	}
}

// Racing requests through the middleware never admit more than the limit.
func TestMiddlewareRacingRequests(t *testing.T) {
	e := newMWEnv(t, freemium.Plan{Limit: 1000})
	var served atomic.Int64
	h := e.gate.Middleware(freemium.MiddlewareOptions{UserID: headerUser, Estimate: func(*http.Request) int64 { return 100 }})(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served.Add(1) }))
	srv := httptest.NewServer(h)
	defer srv.Close()
	var wg sync.WaitGroup
	start := make(chan struct{})
	var paid atomic.Int64
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := http.NewRequest(http.MethodPost, srv.URL+"/x", nil)
			if err != nil {
				t.Error(err)
				return
			}
			r.Header.Set("X-User-ID", "u1")
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusPaymentRequired {
				paid.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	assert.Equal(t, int64(10), served.Load(), "served requests: 10 of 100 tokens fit in 1000")
	assert.Equal(t, int64(30), paid.Load(), "402s")
	assert.Equal(t, int64(1000), e.usage("u1").Used)
}

func TestUsageHandler(t *testing.T) {
	e := newMWEnv(t, freemium.Plan{Limit: 1000})
	require.NoError(t, e.gate.Record(context.Background(), "u1", 250, ""))
	h := e.gate.UsageHandler(headerUser)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request(http.MethodGet, "/api/usage", "u1"))
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var u freemium.Usage
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &u))
	assert.Equal(t, int64(250), u.Used)
	assert.Equal(t, 25.0, u.Percentage)

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, request(http.MethodGet, "/api/usage", ""))
	assert.Equal(t, 401, rec.Code)

	e.store.down.Store(true)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, request(http.MethodGet, "/api/usage", "u1"))
	assert.Equal(t, 503, rec.Code)
	assert.NotContains(t, rec.Body.String(), "store down", "backend errors stay in the log")
}

func TestReportTokensFromManyGoroutines(t *testing.T) {
	e := newMWEnv(t, freemium.Plan{Limit: freemium.Unlimited})
	h := e.gate.Middleware(freemium.MiddlewareOptions{UserID: headerUser})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 1000 {
					freemium.ReportTokens(r.Context(), 1)
				}
			}()
		}
		wg.Wait()
	}))
	h.ServeHTTP(httptest.NewRecorder(), request(http.MethodPost, "/x", "u1"))
	assert.Equal(t, int64(8000), e.usage("u1").Used)
}

// An informational status (103 Early Hints) is not the answer: a 500 after
// it cancels the hold.
func TestMiddlewareInformationalStatus(t *testing.T) {
	e := newMWEnv(t, freemium.Plan{Limit: 1000})
	srv := httptest.NewServer(e.gate.Middleware(freemium.MiddlewareOptions{UserID: headerUser})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusInternalServerError)
		})))
	defer srv.Close()
	r, err := http.NewRequest(http.MethodPost, srv.URL+"/x", nil)
	require.NoError(t, err)
	r.Header.Set("X-User-ID", "u1")
	resp, err := http.DefaultClient.Do(r)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Equal(t, int64(0), e.usage("u1").Used, "canceled, not committed")
}

// A report streamed in full is delivered work, and is counted, even when the
// client hangs up before the handler returns: each of 20 SSE streams runs
// to [DONE], the client closes the connection on reading it, and the
// handler finishes its post-processing only after the request's context has
// ended. With ReportTokens the reported tokens are committed, without it the
// estimate. Both stores.
func TestMiddlewareCountsAStreamTheClientLeftAfterDone(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		for _, report := range []bool{false, true} {
			g, err := freemium.New(freemium.Config{Store: store, Free: freemium.Plan{Limit: freemium.Unlimited},
				Logger: slog.New(slog.DiscardHandler)})
			require.NoError(t, err)
			user := fmt.Sprint("reporting-", report)
			done := make(chan struct{}, 1) // the middleware has settled a request
			gated := g.Middleware(freemium.MiddlewareOptions{UserID: headerUser,
				Estimate: func(*http.Request) int64 { return 100 }})(
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/event-stream")
					for i := range 3 {
						fmt.Fprintf(w, "data: part %d\n\n", i)
						w.(http.Flusher).Flush()
					}
					io.WriteString(w, "data: [DONE]\n\n")
					w.(http.Flusher).Flush()
					<-r.Context().Done() // post-processing outlasts the client
					if report {
						freemium.ReportTokens(r.Context(), 30)
					}
				}))
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer func() { done <- struct{}{} }()
				gated.ServeHTTP(w, r)
			}))
			for range 20 {
				r, err := http.NewRequest(http.MethodPost, srv.URL+"/report", nil)
				require.NoError(t, err)
				r.Header.Set("X-User-ID", user)
				resp, err := srv.Client().Do(r)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() && sc.Text() != "data: [DONE]" {
				}
				require.Equal(t, "data: [DONE]", sc.Text(), "the stream ran to [DONE]")
				resp.Body.Close() // hang up mid-response: the connection closes
				<-done
			}
			srv.Close()
			u, err := g.Usage(context.Background(), user)
			require.NoError(t, err)
			want := int64(20 * 100)
			if report {
				want = 20 * 30
			}
			assert.Equal(t, want, u.Used, "20 complete reports are counted (ReportTokens: %v)", report)
			assert.Zero(t, u.Reserved, "no hold is left behind")
		}
	})
}

// failingCommits is a MemoryStore whose Commit fails.
type failingCommits struct{ *freemium.MemoryStore }

func (failingCommits) Commit(context.Context, freemium.HoldRef, int64, time.Time) error {
	return errStoreDown
}

// A reservation ID commits its hold, like a bearer token: when settling
// fails, the log names the user and the error, never the ID.
func TestMiddlewareLogsNoReservationID(t *testing.T) {
	var logs strings.Builder
	g, err := freemium.New(freemium.Config{Store: failingCommits{freemium.NewMemoryStore()},
		Free: freemium.Plan{Limit: 1000}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	h := g.Middleware(freemium.MiddlewareOptions{UserID: headerUser})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "report")
	}))
	h.ServeHTTP(httptest.NewRecorder(), request(http.MethodPost, "/x", "u1"))
	require.Contains(t, logs.String(), "settling a reservation")
	assert.Contains(t, logs.String(), "u1")
	assert.Contains(t, logs.String(), errStoreDown.Error())
	assert.NotContains(t, logs.String(), "rsv_", "no reservation ID in the log")
}

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

// flakyCommits is a MemoryStore whose first Commits fail.
type flakyCommits struct {
	*freemium.MemoryStore
	failures atomic.Int64 // Commits still to fail
}

func (s *flakyCommits) Commit(ctx context.Context, h freemium.HoldRef, tokens int64, now time.Time) error {
	if s.failures.Add(-1) >= 0 {
		return errStoreDown
	}
	return s.MemoryStore.Commit(ctx, h, tokens, now)
}

// Delivered work is counted through a Store that fails a Commit or two:
// the middleware tries again.
func TestMiddlewareRetriesTheCommit(t *testing.T) {
	store := &flakyCommits{MemoryStore: freemium.NewMemoryStore()}
	store.failures.Store(2)
	g, err := freemium.New(freemium.Config{Store: store, Free: freemium.Plan{Limit: 1000}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	h := g.Middleware(freemium.MiddlewareOptions{UserID: headerUser})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		freemium.ReportTokens(r.Context(), 40)
		io.WriteString(w, "report")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request(http.MethodPost, "/x", "u1"))
	require.Equal(t, http.StatusOK, rec.Code)
	u, err := g.Usage(context.Background(), "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(40), u.Used, "committed on the third try")
	assert.Zero(t, u.Reserved)
}
