package freemium

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// MiddlewareOptions configures Gate.Middleware.
type MiddlewareOptions struct {
	// UserID names the request's user. An error or "" is answered 401.
	// Required.
	UserID func(*http.Request) (string, error)

	// Estimate is the tokens a request is expected to cost, reserved before
	// the handler runs. Default: DefaultEstimate for every request.
	Estimate func(*http.Request) int64

	// Gated are the requests to gate, as net/http ServeMux patterns
	// ("POST /api/features/"). Default: Config.Gated, and when that is
	// empty too, every request.
	Gated []string

	// Blocked writes the response to a blocked request. Default: 402 Payment
	// Required with an RFC 9457 problem (see WriteProblem).
	Blocked func(w http.ResponseWriter, r *http.Request, d Decision)

	// FailOpen serves requests ungated when the gate cannot decide (its
	// Store or subscription checker failed). Default false: 503.
	FailOpen bool
}

// DefaultEstimate is the estimate of MiddlewareOptions without an Estimate.
const DefaultEstimate int64 = 1000

// settleTimeout bounds the Commit or Cancel the middleware makes after the
// handler, on a context the client can no longer cancel.
const settleTimeout = 10 * time.Second

// settleAttempts is how many times the middleware tries a Commit or Cancel
// after the handler, and settleBackoff the wait before the first retry;
// each later one doubles it.
const (
	settleAttempts = 4
	settleBackoff  = 50 * time.Millisecond
)

// Middleware gates requests: it reserves the estimate before the handler and
// answers a blocked request itself (402, see WriteProblem). After the
// handler it commits the tokens reported with ReportTokens, or the estimate
// when none were.
//
// Delivered work is counted: the reservation is committed when the handler
// answered a success (a 2xx or 3xx status, or body bytes, or a flush),
// whatever the client did afterwards; a client that hangs up after reading
// a streamed report has had it. It is canceled only when the handler
// panicked (re-panicked after), answered an error status (400 and up), or
// wrote nothing before the request's context ended (the client went away
// first), and even then tokens reported with ReportTokens are committed:
// usage that happened is recorded. A Commit or Cancel that fails is tried
// again, four tries within ten seconds.
//
// Every gated response carries X-Usage-Plan, X-Usage-Used, X-Usage-Limit,
// X-Usage-Remaining, for periods that end X-Usage-Reset (RFC 3339), and
// for a user with credits X-Usage-Credits.
// On a blocked request they are the usage that blocked it. On an admitted
// one they count the request as done, with the tokens the handler reported
// with ReportTokens before it wrote its answer (else the estimate), and
// X-Usage-Warning: true is added when that reaches Config.WarnAt. The
// handler reads the Decision that admitted it with DecisionFrom.
//
// The X-Usage-* headers are used rather than the IETF RateLimit fields,
// which are still a draft whose syntax has changed between revisions, and
// which count requests with a reset in seconds; these are token allowances
// with calendar resets.
func (g *Gate) Middleware(opts MiddlewareOptions) func(http.Handler) http.Handler {
	if opts.UserID == nil {
		panic("freemium: MiddlewareOptions.UserID is nil: give a function that names the request's user")
	}
	if opts.Estimate == nil {
		opts.Estimate = func(*http.Request) int64 { return DefaultEstimate }
	}
	if opts.Blocked == nil {
		opts.Blocked = func(w http.ResponseWriter, _ *http.Request, d Decision) { WriteProblem(w, d) }
	}
	// A request is gated when a ServeMux holding only the Gated patterns
	// routes it to the marker; a redirect (a missing trailing slash, an
	// unclean path) or no match leaves it ungated.
	patterns := opts.Gated
	if len(patterns) == 0 {
		patterns = g.cfg.Gated
	}
	var gated *http.ServeMux
	marker := &gatedMarker{}
	if len(patterns) > 0 {
		gated = http.NewServeMux()
		for _, p := range patterns {
			gated.Handle(p, marker)
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if gated != nil {
				if h, _ := gated.Handler(r); h != marker {
					next.ServeHTTP(w, r)
					return
				}
			}
			g.serveGated(w, r, next, opts)
		})
	}
}

func (g *Gate) serveGated(w http.ResponseWriter, r *http.Request, next http.Handler, opts MiddlewareOptions) {
	user, err := opts.UserID(r)
	if err == nil && user == "" {
		err = errors.New("no user")
	}
	if err != nil {
		writeError(w, http.StatusUnauthorized, "Unauthorized", "The request names no user.")
		return
	}
	estimate := opts.Estimate(r)
	ctx := r.Context()
	res, err := g.Reserve(ctx, user, estimate)
	switch {
	case errors.Is(err, ErrInvalidUserID):
		writeError(w, http.StatusUnauthorized, "Unauthorized", "The request's user ID is not valid.")
		return
	case errors.Is(err, ErrInvalidTokens):
		g.cfg.Logger.ErrorContext(ctx, "freemium: MiddlewareOptions.Estimate returned an invalid count",
			g.requestAttrs(r, user, err)...)
		writeError(w, http.StatusInternalServerError, "Internal Server Error", "The request's cost could not be estimated.")
		return
	case err != nil && ctx.Err() != nil:
		// The client went away: nobody to answer, and nothing wrong here.
		g.cfg.Logger.DebugContext(ctx, "freemium: client gone before the gate decided", g.requestAttrs(r, user, err)...)
		return
	case err != nil && opts.FailOpen:
		g.cfg.Logger.WarnContext(ctx, "freemium: gate unavailable; serving ungated (FailOpen)", g.requestAttrs(r, user, err)...)
		next.ServeHTTP(w, r)
		return
	case err != nil:
		g.cfg.Logger.ErrorContext(ctx, "freemium: gate unavailable; answered 503", g.requestAttrs(r, user, err)...)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "Service Unavailable", "Usage cannot be checked right now. Try again shortly.")
		return
	}
	d := res.Decision()
	if !res.OK() {
		setUsageHeaders(w.Header(), d.Usage)
		opts.Blocked(w, r, d)
		return
	}

	rec := &tokenRecorder{decision: d}
	sw := &statusWriter{ResponseWriter: w, ctx: ctx, status: http.StatusOK}
	// The headers go out with the handler's answer, with this request's
	// tokens counted: those it reported by then, else the estimate.
	sw.header = func() {
		tokens, reported := rec.total()
		if !reported {
			tokens = estimate
		}
		u := g.withRequest(d, tokens)
		setUsageHeaders(w.Header(), u)
		if u.Warning {
			w.Header().Set("X-Usage-Warning", "true")
		}
	}
	defer func() {
		p := recover()
		if p == nil && !sw.wroteHeader && sw.header != nil {
			sw.header() // the implicit 200 of a handler that wrote nothing
		}
		// A handler that returns without writing has answered 200, unless
		// the client was gone by then.
		answered := sw.delivered || r.Context().Err() == nil
		g.settle(r, user, res, rec, estimate, p == nil && sw.status < 400 && answered)
		if p != nil {
			panic(p)
		}
	}()
	next.ServeHTTP(sw, r.WithContext(context.WithValue(ctx, tokenKey{}, rec)))
}

// requestAttrs are the log attributes of a gated request: its method and
// route (the ServeMux pattern, else the path), its user and the error.
func (g *Gate) requestAttrs(r *http.Request, user string, err error) []any {
	route := slog.String("http.route", r.Pattern)
	if r.Pattern == "" {
		route = slog.String("url.path", r.URL.Path)
	}
	return []any{slog.String("http.request.method", r.Method), route, g.UserAttr(user), slog.Any("err", err)}
}

// withRequest is the usage before the request d admitted, with the
// request's tokens counted as used (and spent from the credits as Commit
// will spend them): what a meter shows once the request is done.
func (g *Gate) withRequest(d Decision, tokens int64) Usage {
	u := d.Usage
	limit := g.hardLimit(u.Plan)
	if u.Credits > 0 {
		u.Credits -= min(u.Credits, SpendFromGrants(limit, u.Used, tokens, d.FirstReport))
	}
	u.Used = addSat(u.Used, tokens)
	u.FirstReportAvailable = false
	if u.Limit != Unlimited {
		g.measure(&u, limit != Unlimited)
	}
	return u
}

// hardLimit is the limit of the plan named name as Holds give it: Unlimited
// for a soft limit.
func (g *Gate) hardLimit(name string) int64 {
	p := &g.cfg.Free
	for i := range g.cfg.Plans {
		if g.cfg.Plans[i].Name == name {
			p = &g.cfg.Plans[i]
		}
	}
	if p.Name != name {
		return Unlimited
	}
	return g.hold(p, Window{}, "", 0, time.Time{}).Limit
}

// DecisionFrom returns the Decision that admitted the request of ctx, for
// a handler behind Gate.Middleware that shows the usage or the warning.
// ok is false outside a gated request.
func DecisionFrom(ctx context.Context) (d Decision, ok bool) {
	t, ok := ctx.Value(tokenKey{}).(*tokenRecorder)
	if !ok {
		return Decision{}, false
	}
	return t.decision, true
}

// settle commits or cancels res after the handler. A Store call that
// fails (each is bounded by Config.StoreTimeout) is tried again with
// backoff, settleAttempts times in all within settleTimeout: Commit and
// Cancel are idempotent, and the work was done, so its usage must not be
// lost to one slow call.
func (g *Gate) settle(r *http.Request, user string, res *Reservation, rec *tokenRecorder, estimate int64, succeeded bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), settleTimeout)
	defer cancel()
	tokens, reported := rec.total()
	once := func() error {
		switch {
		case reported:
			return res.Commit(ctx, tokens)
		case succeeded:
			return res.Commit(ctx, estimate)
		}
		return res.Cancel(ctx)
	}
	err := once()
	for attempt, wait := 1, settleBackoff; attempt < settleAttempts && err != nil && !errors.Is(err, ErrReservationNotFound); attempt, wait = attempt+1, wait*2 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
		err = once()
	}
	if err != nil {
		// Not the reservation's ID: it commits the hold, like a bearer token.
		g.cfg.Logger.ErrorContext(ctx, "freemium: settling a reservation failed", g.requestAttrs(r, user, err)...)
	}
}

type tokenKey struct{}

// tokenRecorder adds up what a handler reports, beside the decision that
// admitted its request.
type tokenRecorder struct {
	tokens   atomic.Int64
	reported atomic.Bool
	decision Decision
}

func (t *tokenRecorder) total() (int64, bool) { return t.tokens.Load(), t.reported.Load() }

// gatedMarker is the handler a Gated pattern routes to.
type gatedMarker struct{}

func (*gatedMarker) ServeHTTP(http.ResponseWriter, *http.Request) {}

// checkPatterns reports the first of patterns that a ServeMux refuses, by
// index: invalid, or in conflict with an earlier one. Config.validate uses
// it so that Middleware never panics on Config.Gated.
func checkPatterns(patterns []string) (int, error) {
	mux := http.NewServeMux()
	for i, p := range patterns {
		if err := handlePattern(mux, p); err != nil {
			return i, err
		}
	}
	return -1, nil
}

// handlePattern registers p on mux, turning ServeMux's panic into an error.
func handlePattern(mux *http.ServeMux, p string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	mux.Handle(p, &gatedMarker{})
	return nil
}

// ReportTokens tells Gate.Middleware that the handler serving ctx's request
// spent n tokens; calls add up, from any goroutine. The middleware commits
// the total instead of the estimate, even when the handler then fails (see
// Gate.Middleware for when the estimate is committed). Outside a gated
// request it does nothing.
func ReportTokens(ctx context.Context, n int64) {
	t, ok := ctx.Value(tokenKey{}).(*tokenRecorder)
	if !ok || n < 0 {
		return
	}
	for {
		old := t.tokens.Load()
		if t.tokens.CompareAndSwap(old, min(addSat(old, n), MaxTokens)) {
			break
		}
	}
	t.reported.Store(true)
}

// statusWriter remembers the status a handler answered, and whether it
// answered before the request's context ended.
type statusWriter struct {
	http.ResponseWriter
	ctx         context.Context // the request's
	header      func()          // sets the usage headers, before the first answer
	status      int
	wroteHeader bool
	delivered   bool // the status, body bytes or a flush came before ctx ended
}

// answer records that the handler answered with its status.
func (s *statusWriter) answer() {
	if !s.wroteHeader && s.header != nil {
		s.header()
		s.header = nil
	}
	s.wroteHeader = true
	if s.ctx.Err() == nil {
		s.delivered = true
	}
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wroteHeader && code >= 200 { // 1xx are informational, not the answer
		s.status = code
		s.answer()
	}
	s.ResponseWriter.WriteHeader(code)
}

// Flush lets streaming handlers that assert http.Flusher flush through.
func (s *statusWriter) Flush() {
	s.answer()
	http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.answer()
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush,
// deadlines), for streaming handlers.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func setUsageHeaders(h http.Header, u Usage) {
	h.Set("X-Usage-Plan", u.Plan)
	h.Set("X-Usage-Used", strconv.FormatInt(u.Used, 10))
	h.Set("X-Usage-Limit", limitText(u.Limit))
	h.Set("X-Usage-Remaining", limitText(u.Remaining))
	if u.Credits > 0 {
		h.Set("X-Usage-Credits", strconv.FormatInt(u.Credits, 10))
	}
	if !u.PeriodEnd.IsZero() {
		h.Set("X-Usage-Reset", u.PeriodEnd.UTC().Format(time.RFC3339))
	}
}

func limitText(n int64) string {
	if n == Unlimited {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

// Problem is the RFC 9457 problem document of a blocked decision.
type Problem struct {
	Type       string     `json:"type"`                  // "urn:freemium:" and the reason
	Title      string     `json:"title"`                 // short, the same for every problem of a reason
	Status     int        `json:"status"`                // 402
	Detail     string     `json:"detail"`                // the Decision's user-facing Message
	Reason     Reason     `json:"reason"`                // why the request was blocked
	Plan       string     `json:"plan"`                  // the user's plan
	Used       int64      `json:"used"`                  // tokens used in the period
	Limit      int64      `json:"limit"`                 // the plan's limit; -1 for Unlimited
	Remaining  int64      `json:"remaining"`             // tokens left for new requests in the period
	Percentage float64    `json:"percentage"`            // Used/Limit*100
	PeriodEnd  *time.Time `json:"period_end,omitempty"`  // when the period resets; absent for Lifetime
	UpgradeURL string     `json:"upgrade_url,omitempty"` // Config.UpgradeURL
	// Credits is the tokens left in the user's grants; CreditsExpireAt
	// when the first of them expires, absent for none.
	Credits         int64      `json:"credits"`
	CreditsExpireAt *time.Time `json:"credits_expire_at,omitempty"`
	// TopUp is the pack of tokens offered (the first of Config.TopUps);
	// absent when none is configured.
	TopUp *TopUp `json:"top_up,omitempty"`
}

// ProblemFor is the problem document of blocked decision d. Its type is
// "urn:freemium:" followed by the reason; Limit is -1 for Unlimited.
func ProblemFor(d Decision) Problem {
	p := Problem{
		Type:       "urn:freemium:" + string(d.Reason),
		Title:      "Usage limit exceeded",
		Status:     http.StatusPaymentRequired,
		Detail:     d.Message,
		Reason:     d.Reason,
		Plan:       d.Plan,
		Used:       d.Used,
		Limit:      d.Limit,
		Remaining:  d.Remaining,
		Percentage: d.Percentage,
		UpgradeURL: d.UpgradeURL,
		Credits:    d.Credits,
	}
	if !d.CreditsExpireAt.IsZero() {
		at := d.CreditsExpireAt.UTC()
		p.CreditsExpireAt = &at
	}
	if d.TopUp.PriceID != "" {
		t := d.TopUp
		p.TopUp = &t
	}
	switch d.Reason {
	case ReasonSubscriptionRequired:
		p.Title = "Subscription required"
	case ReasonEstimateExceedsRemaining:
		p.Title = "Not enough tokens left"
	}
	if !d.PeriodEnd.IsZero() {
		end := d.PeriodEnd.UTC()
		p.PeriodEnd = &end
	}
	return p
}

// WriteProblem answers blocked decision d: 402 Payment Required with
// ProblemFor(d) as application/problem+json.
func WriteProblem(w http.ResponseWriter, d Decision) {
	writeJSON(w, http.StatusPaymentRequired, "application/problem+json", ProblemFor(d))
}

// writeError answers a problem without usage members.
func writeError(w http.ResponseWriter, status int, title, detail string) {
	writeJSON(w, status, "application/problem+json", map[string]any{
		"type": "about:blank", "title": title, "status": status, "detail": detail,
	})
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil { // the values written here always marshal
		panic(fmt.Sprintf("freemium: encoding a response: %v", err))
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// UsageHandler serves the usage of the request's user as JSON (Usage), for a
// UI meter: 401 when userID returns an error or "", 503 when the gate
// cannot read it.
func (g *Gate) UsageHandler(userID func(*http.Request) (string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, err := userID(r)
		if err != nil || user == "" {
			writeError(w, http.StatusUnauthorized, "Unauthorized", "The request names no user.")
			return
		}
		u, err := g.Usage(r.Context(), user)
		switch {
		case errors.Is(err, ErrInvalidUserID):
			writeError(w, http.StatusUnauthorized, "Unauthorized", "The request's user ID is not valid.")
		case err != nil && r.Context().Err() != nil:
			g.cfg.Logger.DebugContext(r.Context(), "freemium: client gone before its usage was read", g.requestAttrs(r, user, err)...)
		case err != nil:
			g.cfg.Logger.ErrorContext(r.Context(), "freemium: usage unavailable; answered 503", g.requestAttrs(r, user, err)...)
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, "Service Unavailable", "Usage cannot be read right now.")
		default:
			w.Header().Set("Cache-Control", "no-store")
			writeJSON(w, http.StatusOK, "application/json", u)
		}
	})
}
