package stripesub_test

import (
	"errors"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/stripesub"
)

// Subscriptions from Stripe, kept current by its webhook, so that checks
// read the mirror and need not ask Stripe.
func Example() {
	checker, err := stripesub.New(stripesub.Config{APIKey: os.Getenv("STRIPE_SECRET_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	gate, err := freemium.New(freemium.Config{
		Store:              freemium.NewMemoryStore(), // pgstore.New(pool, nil) in production
		Subscriptions:      checker,
		Plans:              []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro_monthly"}, Limit: 200_000, Period: freemium.BillingCycle}},
		SubscriptionMaxAge: time.Hour, // the webhook keeps the mirror current
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/stripe", stripesub.WebhookHandler(gate,
		stripesub.WebhookConfig{Secret: os.Getenv("STRIPE_WEBHOOK_SECRET")}))
	_ = mux // serve it with http.ListenAndServe
}

// Packs of tokens sold through Stripe Checkout: a "Buy 10,000 tokens"
// button, the page Checkout returns to, and the webhook, which grant the
// pack once between them.
func Example_topUps() {
	checker, err := stripesub.New(stripesub.Config{APIKey: os.Getenv("STRIPE_SECRET_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	gate, err := freemium.New(freemium.Config{
		Store:         freemium.NewMemoryStore(),
		Subscriptions: checker,
		TopUps:        []freemium.TopUp{{PriceID: "price_tokens_10k", Tokens: 10_000, Validity: 365 * 24 * time.Hour}},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /buy-tokens", func(w http.ResponseWriter, r *http.Request) {
		user := currentUser(r)
		url, err := gate.TopUpURL(r.Context(), user, "price_tokens_10k", freemium.CheckoutParams{
			SuccessURL: "https://app.example/bought?session={CHECKOUT_SESSION_ID}",
		})
		if err != nil {
			http.Error(w, "checkout unavailable", http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, url, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /bought", func(w http.ResponseWriter, r *http.Request) {
		// The tokens now, without waiting for the webhook; once either way.
		err := gate.CompleteCheckout(r.Context(), currentUser(r), r.URL.Query().Get("session"))
		if err != nil && !errors.Is(err, freemium.ErrPaymentPending) {
			log.Print(err) // the webhook catches up
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	// checkout.session.completed and .async_payment_succeeded grant the
	// pack; charge.refunded takes back what is left of it.
	mux.Handle("POST /webhooks/stripe", stripesub.WebhookHandler(gate,
		stripesub.WebhookConfig{Secret: os.Getenv("STRIPE_WEBHOOK_SECRET")}))
	_ = mux // serve it with http.ListenAndServe
}

// currentUser is the host's authentication.
func currentUser(r *http.Request) string { return r.Header.Get("X-User-ID") }
