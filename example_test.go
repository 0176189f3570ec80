package freemium_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

// A free first report, then a subscription required: the shape of most
// freemium report generators.
func Example() {
	ctx := context.Background()
	gate, err := freemium.New(freemium.Config{
		Store: freemium.NewMemoryStore(),
		Free:  freemium.Plan{FirstReportFree: true, Limit: 0, Period: freemium.Lifetime},
	})
	if err != nil {
		log.Fatal(err)
	}

	for i := range 2 {
		res, err := gate.Reserve(ctx, "alice", 2_000)
		if err != nil {
			log.Fatal(err)
		}
		if !res.OK() {
			fmt.Printf("report %d: blocked (%s): %s\n", i+1, res.Decision().Reason, res.Decision().Message)
			continue
		}
		// ... generate the report, then record what it cost:
		if err := res.Commit(ctx, 1_750); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("report %d: done, first report: %v\n", i+1, res.Decision().FirstReport)
	}
	// Output:
	// report 1: done, first report: true
	// report 2: blocked (subscription_required): Your free report has been used. Please subscribe to generate more reports.
}

// Check answers without holding anything, for a hint in the UI; the
// Decision carries what a usage meter shows.
func ExampleGate_Check() {
	ctx := context.Background()
	clock := freemiumtest.NewClock(time.Date(2026, 11, 15, 9, 0, 0, 0, time.UTC))
	gate, err := freemium.New(freemium.Config{
		Store: freemium.NewMemoryStore(),
		Free:  freemium.Plan{Limit: 10_000, Period: freemium.CalendarMonth},
		Now:   clock.Now,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := gate.Record(ctx, "bob", 8_500, "job-42"); err != nil {
		log.Fatal(err)
	}
	d, err := gate.Check(ctx, "bob", 2_000)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("allowed: %v, used %d of %d (%.0f%%), warning: %v, resets %s\n",
		d.Allowed, d.Used, d.Limit, d.Percentage, d.Warning, d.PeriodEnd.Format("2006-01-02"))
	fmt.Println(d.Message)
	// Output:
	// allowed: false, used 8500 of 10000 (85%), warning: true, resets 2026-12-01
	// This report needs about 2,000 tokens, more than the 1,500 left this period.
}

// The middleware gates a route: it reserves before the handler, answers a
// blocked request 402, and commits what the handler reports.
func ExampleGate_Middleware() {
	gate, err := freemium.New(freemium.Config{
		Store: freemium.NewMemoryStore(),
		Free:  freemium.Plan{FirstReportFree: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	gated := gate.Middleware(freemium.MiddlewareOptions{
		UserID:   func(r *http.Request) (string, error) { return r.Header.Get("X-User-ID"), nil },
		Estimate: func(*http.Request) int64 { return 2_000 },
	})
	report := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		freemium.ReportTokens(r.Context(), 1_750)
		io.WriteString(w, "your report\n")
	})
	srv := httptest.NewServer(gated(report))
	defer srv.Close()

	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, nil)
		req.Header.Set("X-User-ID", "carol")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status, resp.Header.Get("Content-Type"))
	}
	// Output:
	// 200 OK text/plain; charset=utf-8
	// 402 Payment Required application/problem+json
}

// paidUsers stands for the host's own billing records: which users pay for
// which price, and the period they paid for.
type paidUsers struct {
	mu    sync.Mutex
	price map[string]string    // user ID -> price ID
	until map[string]time.Time // user ID -> end of the paid period
}

// Subscriptions implements freemium.SubscriptionChecker from the host's
// records: one active subscription for a paying user, none for the others.
func (p *paidUsers) Subscriptions(ctx context.Context, userID string) ([]freemium.Subscription, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	price, ok := p.price[userID]
	if !ok {
		return nil, nil // no subscription: the Free plan
	}
	end := p.until[userID]
	return []freemium.Subscription{{
		ID:                 "sub_" + userID,
		Status:             freemium.StatusActive,
		PriceIDs:           []string{price},
		CurrentPeriodStart: end.AddDate(0, -1, 0), // BillingCycle windows follow these
		CurrentPeriodEnd:   end,
	}}, nil
}

// A host's own subscription checker: after the host's upgrade code, Refresh
// makes the new plan count for the next request.
func Example_ownChecker() {
	ctx := context.Background()
	clock := freemiumtest.NewClock(time.Date(2026, 11, 15, 9, 0, 0, 0, time.UTC))
	billing := &paidUsers{price: map[string]string{}, until: map[string]time.Time{}}
	gate, err := freemium.New(freemium.Config{
		Store:         freemium.NewMemoryStore(),
		Subscriptions: billing,
		Free:          freemium.Plan{FirstReportFree: true, Period: freemium.Lifetime},
		Plans: []freemium.Plan{
			{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 100_000, Period: freemium.BillingCycle},
		},
		Now: clock.Now,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := gate.MarkFirstReportUsed(ctx, "bob"); err != nil {
		log.Fatal(err)
	}
	d, err := gate.Check(ctx, "bob", 5_000)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.Allowed, d.Reason, d.Plan)

	// The host's upgrade code records the payment, then tells the Gate.
	billing.mu.Lock()
	billing.price["bob"], billing.until["bob"] = "price_pro", time.Date(2026, 12, 15, 9, 0, 0, 0, time.UTC)
	billing.mu.Unlock()
	if err := gate.Refresh(ctx, "bob"); err != nil {
		log.Fatal(err)
	}
	d, err = gate.Check(ctx, "bob", 5_000)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.Allowed, d.Plan, d.Limit, d.PeriodEnd.Format(time.DateOnly))
	// Output:
	// false subscription_required free
	// true pro 100000 2026-12-15
}

// Credits: a bonus granted once whatever the retries, spent after the
// plan's allowance, and a ledger that says where the tokens went.
func ExampleGate_Grant() {
	ctx := context.Background()
	gate, err := freemium.New(freemium.Config{
		Store: freemium.NewMemoryStore(),
		Free:  freemium.Plan{Limit: 1_000},
	})
	if err != nil {
		log.Fatal(err)
	}
	err = gate.Grant(ctx, "alice", 5_000, freemium.GrantOptions{
		Key:       "launch-bonus", // granted once, however often this runs
		ExpiresAt: time.Now().AddDate(0, 1, 0),
		Reason:    "launch bonus",
	})
	if err != nil {
		log.Fatal(err)
	}

	res, err := gate.Reserve(ctx, "alice", 4_000) // 1,000 of the allowance and 3,000 of credits
	if err != nil {
		log.Fatal(err)
	}
	if err := res.Commit(ctx, 4_000); err != nil {
		log.Fatal(err)
	}
	u, err := gate.Usage(ctx, "alice")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("used %d of %d, credits %d\n", u.Used, u.Limit, u.Credits)

	entries, err := gate.Ledger(ctx, "alice", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Printf("%s %d (%s)\n", e.Kind, e.Tokens, e.Reason)
	}
	// Output:
	// used 4000 of 1000, credits 2000
	// grant 5000 (launch bonus)
	// spend -3000 (usage past the plan's allowance)
}
