package stripesub_test

import (
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
