// Package stripetest is a stand-in for the Stripe endpoints stripesub uses,
// for the module's tests.
package stripetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium/stripesub"
)

// Key is the API key the stand-in takes.
const Key = "sk_test_freemium_5ecret"

// StandIn behaves like the Stripe endpoints stripesub.Checker
// uses, with state the test changes between calls: customers by user ID and
// subscriptions by customer. It can fail the next requests with a status, or
// hang them until the test ends.
type StandIn struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	customers map[string]string // user ID -> customer ID
	subs      map[string][]map[string]any
	failNext  []int // statuses for the next requests
	hang      bool
	calls     map[string]int // path -> count
	released  chan struct{}
	checkouts []url.Values      // forms of the checkout sessions created
	completed map[string]string // checkout session ID -> the customer it made
}

// New starts a stand-in, closed when the test ends.
func New(t *testing.T) *StandIn {
	s := &StandIn{t: t, customers: map[string]string{}, subs: map[string][]map[string]any{},
		calls: map[string]int{}, released: make(chan struct{}), completed: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.released) // let hung requests finish before the server closes
		s.srv.Close()
	})
	return s
}

var searchQuery = regexp.MustCompile(`^metadata\['user_id'\]:'((?:[^'\\]|\\.)*)'$`)

func (s *StandIn) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls[r.URL.Path]++
	hang := s.hang
	var fail int
	if len(s.failNext) > 0 {
		fail, s.failNext = s.failNext[0], s.failNext[1:]
	}
	s.mu.Unlock()
	if hang {
		<-s.released
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+Key {
		s.reply(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "Invalid API Key provided"}})
		return
	}
	if fail != 0 {
		s.reply(w, fail, map[string]any{"error": map[string]any{"type": "api_error", "message": fmt.Sprintf("stand-in failure %d", fail)}})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/customers/search":
		m := searchQuery.FindStringSubmatch(r.URL.Query().Get("query"))
		if m == nil {
			s.reply(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "bad query"}})
			return
		}
		user := strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(m[1])
		data := []any{}
		if id, ok := s.customers[user]; ok {
			data = append(data, map[string]any{"id": id, "object": "customer", "metadata": map[string]string{"user_id": user}})
		}
		s.reply(w, http.StatusOK, map[string]any{"object": "search_result", "url": "/v1/customers/search", "has_more": false, "data": data})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/checkout/sessions":
		if err := r.ParseForm(); err != nil {
			s.reply(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": err.Error()}})
			return
		}
		s.checkouts = append(s.checkouts, r.PostForm)
		id := fmt.Sprintf("cs_test_%d", len(s.checkouts))
		s.reply(w, http.StatusOK, map[string]any{"id": id, "object": "checkout.session", "mode": r.PostForm.Get("mode"),
			"url": "https://checkout.example/c/pay/" + id})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/checkout/sessions/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/checkout/sessions/")
		var n int
		if _, err := fmt.Sscanf(id, "cs_test_%d", &n); err != nil || n < 1 || n > len(s.checkouts) {
			s.reply(w, http.StatusNotFound, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "No such checkout.session"}})
			return
		}
		form := s.checkouts[n-1]
		session := map[string]any{"id": id, "object": "checkout.session", "mode": form.Get("mode"), "status": "open",
			"payment_status": "unpaid", "client_reference_id": form.Get("client_reference_id"), "customer": nil,
			"metadata": map[string]string{"user_id": form.Get("metadata[user_id]")}}
		if price := form.Get("metadata[freemium_top_up]"); price != "" {
			session["metadata"].(map[string]string)["freemium_top_up"] = price
		}
		if c, ok := s.completed[id]; ok {
			session["status"], session["customer"], session["payment_status"] = "complete", c, "paid"
			if form.Get("mode") == "payment" {
				session["payment_intent"] = "pi_" + id
			}
		}
		s.reply(w, http.StatusOK, session)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/subscriptions":
		q := r.URL.Query()
		if q.Get("status") != "all" {
			s.t.Errorf("subscriptions listed with status %q, want all", q.Get("status"))
		}
		// Pages as Stripe's: limit (10 by default, at most 100) after
		// starting_after.
		data := s.subs[q.Get("customer")]
		if after := q.Get("starting_after"); after != "" {
			i := slices.IndexFunc(data, func(sub map[string]any) bool { return sub["id"] == after })
			if i < 0 {
				s.reply(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "no such subscription: " + after}})
				return
			}
			data = data[i+1:]
		}
		limit := 10
		if l := q.Get("limit"); l != "" {
			limit, _ = strconv.Atoi(l)
		}
		if limit < 1 || limit > 100 {
			s.reply(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "limit must be in [1, 100]"}})
			return
		}
		page := data[:min(limit, len(data))]
		if page == nil {
			page = []map[string]any{}
		}
		s.reply(w, http.StatusOK, map[string]any{"object": "list", "url": "/v1/subscriptions", "has_more": len(data) > limit, "data": page})
	default:
		s.reply(w, http.StatusNotFound, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "no such route"}})
	}
}

func (s *StandIn) reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	require.NoError(s.t, json.NewEncoder(w).Encode(body))
}

// Complete completes checkout session id, made by CheckoutURL or
// TopUpURL, with customer; a top-up's is paid by payment "pi_" + id.
func (s *StandIn) Complete(id, customer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.completed[id] = customer
}

// SetCustomer makes customer the user's, as the search finds it.
func (s *StandIn) SetCustomer(user, customer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.customers[user] = customer
}

// SetSubs replaces the customer's subscriptions, newest first as Stripe lists them.
func (s *StandIn) SetSubs(customer string, subs ...map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[customer] = subs
}

// Fail makes the next requests fail, one status each.
func (s *StandIn) Fail(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = append(s.failNext, statuses...)
}

// HangAll makes every later request hang until the test ends.
func (s *StandIn) HangAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = true
}

// Count is how many requests reached path.
func (s *StandIn) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// Sub is a subscription as Stripe lists it, with an item for each
// price.
func Sub(id, customer, status string, start, end time.Time, prices ...string) map[string]any {
	items := []any{}
	for i, price := range prices {
		items = append(items, map[string]any{"id": fmt.Sprintf("si_%s_%d", id, i), "object": "subscription_item",
			"price": map[string]any{"id": price, "object": "price"}})
	}
	return map[string]any{
		"id": id, "object": "subscription", "customer": customer, "status": status,
		"current_period_start": start.Unix(), "current_period_end": end.Unix(), "cancel_at_period_end": false,
		"items": map[string]any{"object": "list", "data": items},
	}
}

// Checker returns a stripesub.Checker for cfg.
func Checker(t *testing.T, cfg stripesub.Config) *stripesub.Checker {
	t.Helper()
	s, err := stripesub.New(cfg)
	require.NoError(t, err)
	return s
}

// URL is the stand-in's base URL, for Config.BackendURL.
func (s *StandIn) URL() string { return s.srv.URL }

// Checkouts returns the forms of the checkout sessions created, in order.
func (s *StandIn) Checkouts() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.checkouts...)
}
