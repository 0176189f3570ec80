package freemium_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
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
	// You've reached your free tier limit. Upgrade to continue.
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
