package pgstore_test

import (
	"context"
	"log"
	"os"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/pgstore"
	"github.com/freemiumkit/freemium/stripesub"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Production wiring: usage in Postgres (migrated at start, safely from many
// instances at once), subscriptions from Stripe.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(pool, nil) // schema "freemium"
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	subs, err := stripesub.New(stripesub.Config{
		APIKey:          os.Getenv("STRIPE_SECRET_KEY"),
		SearchCustomers: true, // customers carry metadata user_id
	})
	if err != nil {
		log.Fatal(err)
	}
	gate, err := freemium.New(freemium.Config{
		Store:         store,
		Subscriptions: subs,
		Free:          freemium.Plan{FirstReportFree: true, Period: freemium.Lifetime},
		Plans: []freemium.Plan{
			{Name: "pro", PriceIDs: []string{"price_pro_monthly"}, Limit: 200_000, Period: freemium.BillingCycle},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = gate // serve with gate.Middleware(...)
}
