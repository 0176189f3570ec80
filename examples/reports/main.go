// Command reports is a small report-generation service behind a freemium
// gate: the first report is free, after that a subscription is needed. Its
// page at / shows a usage meter, a button to generate reports, the warning
// at 80%, the blocked state with an upgrade button, and the free-to-paid
// funnel.
//
//	go run ./examples/reports
//
// starts it on PORT (default 8080) with nothing else to set up: usage in
// memory, a demo checkout instead of a payment, and emails written to the
// log. Each environment variable below switches one part to the real
// service:
//
//	DATABASE_URL           keep usage in Postgres
//	STRIPE_SECRET_KEY      subscriptions from Stripe, with STRIPE_PRICE_ID (the
//	                       Pro plan's price); the upgrade button opens Stripe
//	                       Checkout, and so does the "Buy 10,000 tokens"
//	                       button with STRIPE_TOPUP_PRICE_ID (a one-time
//	                       price; without it the pack is not offered)
//	STRIPE_WEBHOOK_SECRET  serve Stripe's webhook at POST /webhooks/stripe
//	RESEND_API_KEY         send the emails with Resend, from RESEND_FROM, to
//	                       users whose ID is an email address
//
// The user comes from the X-User-ID header.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/configfile"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/pgstore"
	"github.com/freemiumkit/freemium/resendnotify"
	"github.com/freemiumkit/freemium/stripesub"
)

// page is the demo's one page, served at /.
//
//go:embed index.html
var page embed.FS

// plans is the demo's config file: its plans and the route it gates. The
// operator's command reads the same file (cmd/freemium --config).
//
//go:embed freemium.yaml
var plans []byte

// estimatedTokens is what one report is expected to cost.
const estimatedTokens = 2_000

// demoPriceID is the Pro plan's price in the demo checkout, and
// demoTopUpPriceID the pack's.
const (
	demoPriceID      = "price_pro"
	demoTopUpPriceID = "price_tokens_10k"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "reports:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	opts, closeServices, err := connect(ctx, os.Getenv)
	if err != nil {
		return err
	}
	defer closeServices()
	port := cmp.Or(os.Getenv("PORT"), "8080")
	opts.BaseURL = "http://127.0.0.1:" + port
	tel, err := newTelemetry()
	if err != nil {
		return err
	}
	defer tel.close(context.Background())
	opts.Observer = tel.observer
	a, err := newApp(opts)
	if err != nil {
		return err
	}
	if err := tel.observe(a.gate); err != nil {
		return err
	}
	a.metrics = tel.handler

	// Deliver the notifications the gate enqueues (upgrade prompts, usage
	// warnings), in the background until Stop.
	if err := a.gate.Start(ctx); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		return errors.Join(err, a.gate.Stop(ctx))
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf(`reports: listening on http://127.0.0.1:%[1]s (open it in a browser)
  store:         %[2]s
  subscriptions: %[3]s
  email:         %[4]s
Or with curl:
  curl -s -XPOST -H 'X-User-ID: alice' http://127.0.0.1:%[1]s/api/reports   # the first report is free
  curl -s -XPOST -H 'X-User-ID: alice' http://127.0.0.1:%[1]s/api/reports   # 402 problem: subscription required (and an upgrade prompt)
  curl -s -XPOST -H 'X-User-ID: bob' http://127.0.0.1:%[1]s/api/topup       # or: buy 10,000 tokens (after bob's free report)
  curl -s -XPOST -H 'X-User-ID: alice' http://127.0.0.1:%[1]s/api/subscribe # the checkout
  curl -s -XPOST -H 'X-User-ID: alice' http://127.0.0.1:%[1]s/api/reports   # allowed on the pro plan
  curl -s -H 'X-User-ID: alice' http://127.0.0.1:%[1]s/api/usage
  curl -s http://127.0.0.1:%[1]s/api/funnel                                 # limit hits, prompts, conversions
  curl -s http://127.0.0.1:%[1]s/metrics | grep ^freemium                   # the gate's metrics, for Prometheus
`, port, opts.describe.store, opts.describe.subscriptions, opts.describe.email)

	select {
	case err = <-errc:
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = srv.Shutdown(shutdown)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(err, a.gate.Stop(stopCtx))
}

// options are the services the app runs on.
type options struct {
	Store freemium.Store
	// Subscriptions is a *freemiumtest.Subscriptions for the demo checkout,
	// or Stripe.
	Subscriptions freemium.SubscriptionChecker
	// PriceID places a subscriber on the Pro plan.
	PriceID string
	// TopUpPriceID is the one-time price of the pack of 10,000 tokens;
	// "" for no pack.
	TopUpPriceID string
	// Notifier sends the emails.
	Notifier freemium.Notifier
	// WebhookSecret is Stripe's webhook signing secret; "" for no webhook.
	WebhookSecret string
	// BaseURL is where the page is, such as http://127.0.0.1:8080: the
	// emails' upgrade link. Default "": a relative link.
	BaseURL string
	// Now is the clock.
	Now func() time.Time
	// Observer receives the gate's metrics and traces; nil for none.
	Observer freemium.Observer

	describe struct{ store, subscriptions, email string } // what is real, for the startup text
}

// connect opens the services the environment names, and stand-ins for the
// others. The returned func closes them.
func connect(ctx context.Context, getenv func(string) string) (options, func(), error) {
	opts := options{Now: time.Now}

	opts.Store, opts.describe.store = freemium.NewMemoryStore(), "memory (set DATABASE_URL for Postgres)"
	closeStore := func() {}
	if dsn := getenv("DATABASE_URL"); dsn != "" {
		store, pool, err := openPostgres(ctx, dsn)
		if err != nil {
			return options{}, nil, err
		}
		opts.Store, opts.describe.store, closeStore = store, "Postgres (DATABASE_URL)", pool.Close
	}
	fail := func(err error) (options, func(), error) {
		closeStore()
		return options{}, nil, err
	}

	opts.Subscriptions, opts.PriceID, opts.TopUpPriceID = freemiumtest.NewSubscriptions(), demoPriceID, demoTopUpPriceID
	opts.describe.subscriptions = "demo checkout, no payment (set STRIPE_SECRET_KEY and STRIPE_PRICE_ID for Stripe)"
	if key := getenv("STRIPE_SECRET_KEY"); key != "" {
		opts.PriceID, opts.TopUpPriceID = getenv("STRIPE_PRICE_ID"), getenv("STRIPE_TOPUP_PRICE_ID")
		if opts.PriceID == "" {
			return fail(errors.New("STRIPE_PRICE_ID is empty: with STRIPE_SECRET_KEY, set the Pro plan's price (price_...)"))
		}
		stripe, err := stripesub.New(stripesub.Config{APIKey: key})
		if err != nil {
			return fail(err)
		}
		opts.Subscriptions, opts.describe.subscriptions = stripe, "Stripe (STRIPE_SECRET_KEY), price "+opts.PriceID
		opts.WebhookSecret = getenv("STRIPE_WEBHOOK_SECRET")
		if opts.WebhookSecret != "" {
			opts.describe.subscriptions += ", webhook at POST /webhooks/stripe"
		} else {
			// The webhook is what tells the gate which Stripe customer a
			// checkout created; without it an upgrade is not seen.
			opts.describe.subscriptions += ", no webhook: set STRIPE_WEBHOOK_SECRET, or upgrades are not seen"
		}
	}

	opts.Notifier, opts.describe.email = logNotifier{slog.Default()}, "to the log (set RESEND_API_KEY and RESEND_FROM for Resend)"
	if key := getenv("RESEND_API_KEY"); key != "" {
		resend, err := resendnotify.New(resendnotify.Config{
			APIKey:    key,
			From:      getenv("RESEND_FROM"),
			Recipient: emailRecipient,
		})
		if err != nil {
			return fail(fmt.Errorf("RESEND_API_KEY is set: %w", err))
		}
		opts.Notifier, opts.describe.email = resend, "Resend (RESEND_API_KEY), to users whose ID is an email address"
	}
	return opts, closeStore, nil
}

// openPostgres opens the pool and brings the schema up to date.
func openPostgres(ctx context.Context, dsn string) (*pgstore.Store, *pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	s, err := pgstore.New(pool, nil)
	if err == nil {
		err = s.Migrate(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return s, pool, nil
}

// emailRecipient is the demo's address book: a user whose ID is an email
// address gets their emails there. Any other user has no address, and the
// notifier gives up on their email at once (a permanent
// freemium.ErrNoRecipient).
func emailRecipient(_ context.Context, userID string) (email, name string, err error) {
	if a, err := mail.ParseAddress(userID); err == nil && a.Address == userID {
		return userID, "", nil
	}
	return "", "", nil
}

// logNotifier is the demo's stand-in for email: it writes each notification
// to the log, and never an email address.
type logNotifier struct{ log *slog.Logger }

var _ freemium.Notifier = logNotifier{}

func (l logNotifier) Notify(ctx context.Context, n freemium.Notification) error {
	user := n.UserID
	if strings.Contains(user, "@") {
		user = "(an email address)"
	}
	l.log.InfoContext(ctx, "reports: email written to the log instead of sent (set RESEND_API_KEY to send)",
		"kind", n.Kind, "user", user, "plan", n.Usage.Plan, "used", n.Usage.Used, "limit", n.Usage.Limit)
	return nil
}

// app is the service: a gate, and the checkout that upgrades its users.
type app struct {
	gate          *freemium.Gate
	demo          *freemiumtest.Subscriptions // the demo checkout's billing provider; nil with Stripe
	priceID       string
	topUpPriceID  string // "" for no pack
	webhookSecret string
	now           func() time.Time
	metrics       http.Handler // GET /metrics; nil for none
}

func newApp(opts options) (*app, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// The plans (free: one report; pro: 20,000 tokens a billing period)
	// and the gated route come from freemium.yaml.
	cfg, err := configfile.Parse(plans)
	if err != nil {
		return nil, err
	}
	cfg.Store, cfg.Subscriptions, cfg.Notifier = opts.Store, opts.Subscriptions, opts.Notifier
	cfg.Plans[0].PriceIDs = []string{opts.PriceID} // the demo checkout's, or STRIPE_PRICE_ID
	cfg.TopUps[0].PriceID = opts.TopUpPriceID      // likewise, or STRIPE_TOPUP_PRICE_ID
	if opts.TopUpPriceID == "" {
		cfg.TopUps = nil // Stripe without a pack's price: none is offered
	}
	// Where a blocked user goes to upgrade: the page and its button, in
	// the 402 answers and the emails (which need it absolute).
	cfg.UpgradeURL = upgradeURL(opts.BaseURL)
	cfg.Now, cfg.Logger, cfg.Observer = opts.Now, slog.Default(), opts.Observer
	gate, err := freemium.New(cfg)
	if err != nil {
		return nil, err
	}
	demo, _ := opts.Subscriptions.(*freemiumtest.Subscriptions)
	return &app{gate: gate, demo: demo, priceID: opts.PriceID, topUpPriceID: opts.TopUpPriceID,
		webhookSecret: opts.WebhookSecret, now: opts.Now}, nil
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
	mux.HandleFunc("GET /api/funnel", a.funnel)
	mux.HandleFunc("POST /api/subscribe", a.subscribe)
	mux.HandleFunc("POST /api/topup", a.topUp)
	mux.HandleFunc("GET /checkout/success", a.checkoutSuccess)
	if a.webhookSecret != "" {
		mux.Handle("POST /webhooks/stripe", stripesub.WebhookHandler(a.gate, stripesub.WebhookConfig{Secret: a.webhookSecret}))
	}
	if a.metrics != nil {
		mux.Handle("GET /metrics", a.metrics)
	}
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

// subscribe is the upgrade button. In the demo it is the checkout: it puts
// the user on the pro plan for a month. With Stripe it answers the Stripe
// Checkout page to send the user to, which returns to /checkout/success.
func (a *app) subscribe(w http.ResponseWriter, r *http.Request) {
	user, _ := userID(r)
	if user == "" {
		http.Error(w, "X-User-ID header required", http.StatusUnauthorized)
		return
	}
	if a.demo == nil {
		checkout(w, r, user, a.priceID, a.gate.CheckoutURL)
		return
	}
	now := a.now()
	a.demo.Subscribe(user, a.priceID, now, now.AddDate(0, 1, 0))
	// What a checkout's success page does: mirror the new subscription now.
	if err := a.gate.Refresh(r.Context(), user); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"plan": "pro"})
}

// topUp is the "Buy 10,000 tokens" button. In the demo it is the payment:
// it grants the pack at once, as Stripe's webhook does for a payment. With
// Stripe it answers the Stripe Checkout page to send the user to, which
// returns to /checkout/success.
func (a *app) topUp(w http.ResponseWriter, r *http.Request) {
	user, _ := userID(r)
	if user == "" {
		http.Error(w, "X-User-ID header required", http.StatusUnauthorized)
		return
	}
	if a.topUpPriceID == "" {
		http.Error(w, "no pack of tokens is on sale: set STRIPE_TOPUP_PRICE_ID", http.StatusNotFound)
		return
	}
	if a.demo == nil {
		checkout(w, r, user, a.topUpPriceID, a.gate.TopUpURL)
		return
	}
	payment := freemium.TopUpPayment{ID: "demo_" + rand.Text(), PriceID: a.topUpPriceID, UserID: user}
	if err := a.gate.ApplyTopUp(r.Context(), payment); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	u, err := a.gate.Usage(r.Context(), user)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"credits": u.Credits})
}

// checkout answers the Stripe Checkout page of price for the user, made
// by newURL (the Gate's CheckoutURL or TopUpURL), which returns to
// /checkout/success, or to the page when the user cancels.
func checkout(w http.ResponseWriter, r *http.Request, user, price string,
	newURL func(context.Context, string, string, freemium.CheckoutParams) (string, error)) {
	back := "http://" + r.Host
	link, err := newURL(r.Context(), user, price, freemium.CheckoutParams{
		SuccessURL: back + "/checkout/success?user=" + url.QueryEscape(user) + "&session={CHECKOUT_SESSION_ID}",
		CancelURL:  back + "/?user=" + url.QueryEscape(user),
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"checkout_url": link})
}

// checkoutSuccess is where Stripe Checkout returns the user: it completes
// the checkout (links the new customer and mirrors the subscription, or
// grants the pack bought, without waiting for the webhook), and goes back
// to the page. (A real service takes
// the user from its session, not from the URL.)
func (a *app) checkoutSuccess(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if user == "" {
		http.Error(w, "user parameter required", http.StatusBadRequest)
		return
	}
	if err := a.gate.CompleteCheckout(r.Context(), user, r.URL.Query().Get("session")); err != nil {
		// The webhook, or the next blocked check, catches up.
		slog.WarnContext(r.Context(), "checkout not completed here", "user", user, "err", err)
	}
	http.Redirect(w, r, "/?user="+url.QueryEscape(user), http.StatusSeeOther)
}

// funnel reports the last 30 days' free-to-paid funnel, for all users.
func (a *app) funnel(w http.ResponseWriter, r *http.Request) {
	now := a.now()
	f, err := a.gate.Funnel(r.Context(), now.AddDate(0, 0, -30), now.Add(time.Minute))
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// upgradeURL is the page, for the emails' upgrade button: absolute, since an
// email has no page to be relative to. "" when the page's address is unknown.
func upgradeURL(base string) string {
	if base == "" {
		return ""
	}
	return base + "/"
}
