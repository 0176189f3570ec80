// Command reports is a small report-generation service behind a freemium
// gate: the first report is free, after that a subscription is needed. Its
// page at / shows a usage meter, a button to generate reports, the warning
// at 80%, the blocked state with an upgrade button and a demo checkout.
//
//	go run ./examples/reports
//
// starts it on PORT (default 8080) with an in-memory store. With
// DATABASE_URL set it keeps its state in Postgres instead. The user comes
// from the X-User-ID header; POST /api/subscribe stands in for a checkout.
package main

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

// page is the demo's one page, served at /.
//
//go:embed index.html
var page embed.FS

// estimatedTokens is what one report is expected to cost.
const estimatedTokens = 2_000

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "reports:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	store, closeStore, err := openStore(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer closeStore()

	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	app, err := newApp(store, freemiumtest.NewSubscriptions(), time.Now)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: app.routes(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Printf(`reports: listening on http://127.0.0.1:%[1]s (open it in a browser)
Or with curl:
  curl -s -XPOST -H 'X-User-ID: alice' http://127.0.0.1:%[1]s/api/reports   # the first report is free
  curl -s -XPOST -H 'X-User-ID: alice' http://127.0.0.1:%[1]s/api/reports   # 402 problem: subscription required
  curl -s -XPOST -H 'X-User-ID: alice' http://127.0.0.1:%[1]s/api/subscribe # a demo checkout
  curl -s -XPOST -H 'X-User-ID: alice' http://127.0.0.1:%[1]s/api/reports   # allowed on the pro plan
  curl -s -H 'X-User-ID: alice' http://127.0.0.1:%[1]s/api/usage
`, port)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}

// openStore is Postgres when url is set, memory otherwise.
func openStore(ctx context.Context, url string) (freemium.Store, func(), error) {
	if url == "" {
		return freemium.NewMemoryStore(), func() {}, nil
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	s, err := freemium.NewPostgresStore(pool, nil)
	if err == nil {
		err = s.Migrate(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return s, pool.Close, nil
}

// app is the service: a gate, and a fake billing provider for the demo checkout.
type app struct {
	gate *freemium.Gate
	subs *freemiumtest.Subscriptions
	now  func() time.Time
}

func newApp(store freemium.Store, subs *freemiumtest.Subscriptions, now func() time.Time) (*app, error) {
	gate, err := freemium.New(freemium.Config{
		Store:         store,
		Subscriptions: subs,
		Free:          freemium.Plan{Name: "free", FirstReportFree: true, Limit: 0, Period: freemium.Lifetime},
		Plans: []freemium.Plan{
			{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 10 * estimatedTokens, Period: freemium.BillingCycle},
		},
		UpgradeURL: "/api/subscribe",
		Now:        now,
		Logger:     slog.Default(),
	})
	if err != nil {
		return nil, err
	}
	return &app{gate: gate, subs: subs, now: now}, nil
}

func (a *app) routes() http.Handler {
	gated := a.gate.Middleware(freemium.MiddlewareOptions{
		UserID:   userID,
		Estimate: func(*http.Request) int64 { return estimatedTokens },
	})
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", http.FileServerFS(page))
	mux.Handle("POST /api/reports", gated(http.HandlerFunc(createReport)))
	mux.Handle("GET /api/usage", a.gate.UsageHandler(userID))
	mux.HandleFunc("POST /api/subscribe", a.subscribe)
	return mux
}

// userID is the demo's authentication: the X-User-ID header.
func userID(r *http.Request) (string, error) {
	return r.Header.Get("X-User-ID"), nil
}

// createReport runs behind the gate: the middleware reserved the estimate,
// and commits what the handler reports.
func createReport(w http.ResponseWriter, r *http.Request) {
	user, _ := userID(r)
	report, tokens := generateReport(user)
	freemium.ReportTokens(r.Context(), tokens)
	writeJSON(w, http.StatusOK, map[string]any{"report": report, "tokens": tokens})
}

// generateReport stands in for the model call.
func generateReport(user string) (string, int64) {
	return "Quarterly summary for " + user, estimatedTokens - 250
}

// subscribe is the demo's checkout: it puts the user on the pro plan for a month.
func (a *app) subscribe(w http.ResponseWriter, r *http.Request) {
	user := r.Header.Get("X-User-ID")
	if user == "" {
		http.Error(w, "X-User-ID header required", http.StatusUnauthorized)
		return
	}
	now := a.now()
	a.subs.Subscribe(user, "price_pro", now, now.AddDate(0, 1, 0))
	// What a checkout's success page does: mirror the new subscription now.
	if err := a.gate.Refresh(r.Context(), user); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"plan": "pro"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
