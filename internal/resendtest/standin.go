// Package resendtest is a stand-in for Resend's API, for the module's tests
// of notifiers and of the dispatcher.
package resendtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/resendnotify"
)

// The stand-in's API key, and the address of user u1 in Config.
const (
	Key   = "re_test_freemium_5ecret"
	Email = "jane.doe@example.com"
)

// StandIn behaves like Resend's POST /emails: it checks the bearer key
// and the JSON body, replies {"id": ...}, and, as Resend does, answers a
// repeated Idempotency-Key with the first reply and no second delivery (and
// a 409 when the payload differs). It can fail the next requests with a
// status, or drop their connections, before or after delivering. Its error
// messages quote the request, as a pessimistic stand-in for Resend's: the
// notifier must keep the address and key out of its errors anyway.
type StandIn struct {
	tb  testing.TB
	srv *httptest.Server

	mu         sync.Mutex
	byKey      map[string]keyedSend
	deliveries []Delivery
	faults     []Fault
	requests   int
	Pad        int          // bytes of whitespace after each reply's JSON; set before the first request
	conns      atomic.Int64 // connections opened
}

// keyedSend is the first send with an idempotency key.
type keyedSend struct {
	payload [32]byte
	id      string
}

// Delivery is an email the stand-in accepted.
type Delivery struct {
	ID     string
	Header http.Header
	Body   Body
}

// Body is the JSON of POST /emails, every field resend-go may send.
type Body struct {
	From        string            `json:"from"`
	To          []string          `json:"to"`
	Subject     string            `json:"subject"`
	Bcc         []string          `json:"bcc"`
	Cc          []string          `json:"cc"`
	ReplyTo     string            `json:"reply_to"`
	HTML        string            `json:"html"`
	Text        string            `json:"text"`
	Tags        []json.RawMessage `json:"tags"`
	Attachments []json.RawMessage `json:"attachments"`
	Headers     map[string]string `json:"headers"`
	ScheduledAt string            `json:"scheduled_at"`
}

// Fault is what the stand-in does to one request instead of serving it.
type Fault struct {
	Status     int               // reply with this status and a Resend-style error
	Name       string            // the error's name; default from the status
	RetryAfter string            // the Retry-After header of the reply
	Header     map[string]string // more headers of the reply
	Drop       bool              // close the connection without a reply
	Deliver    bool              // with drop or garble: deliver the email first
	Garble     bool              // reply 200 with a body cut short
}

// New starts a stand-in, closed when the test ends.
func New(tb testing.TB) *StandIn {
	s := &StandIn{tb: tb, byKey: map[string]keyedSend{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	tb.Cleanup(s.srv.Close)
	return s
}

func (s *StandIn) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	var fault Fault
	if len(s.faults) > 0 {
		fault, s.faults = s.faults[0], s.faults[1:]
	}
	if r.Method != http.MethodPost || r.URL.Path != "/emails" {
		s.fail(w, http.StatusNotFound, "not_found", "The requested endpoint does not exist.")
		return
	}
	switch auth := r.Header.Get("Authorization"); {
	case auth == "":
		s.fail(w, http.StatusUnauthorized, "missing_api_key", "Missing API key in the authorization header.")
		return
	case auth != "Bearer "+Key:
		s.fail(w, http.StatusForbidden, "invalid_api_key", fmt.Sprintf("API key %s is invalid.", strings.TrimPrefix(auth, "Bearer ")))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		s.fail(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("Content-Type %q is not application/json.", ct))
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		s.fail(w, http.StatusBadRequest, "validation_error", err.Error())
		return
	}
	var body Body
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		s.fail(w, http.StatusUnprocessableEntity, "validation_error", "Invalid JSON: "+err.Error())
		return
	}
	switch {
	case fault.Status != 0:
		if fault.RetryAfter != "" {
			w.Header().Set("Retry-After", fault.RetryAfter)
		}
		for k, v := range fault.Header {
			w.Header().Set(k, v)
		}
		name := fault.Name
		if name == "" {
			name = map[int]string{422: "validation_error", 429: "rate_limit_exceeded", 500: "internal_server_error"}[fault.Status]
		}
		s.fail(w, fault.Status, name, fmt.Sprintf("Stand-in failure for the email to %q.", strings.ToLower(strings.Join(body.To, ", "))))
		return
	case fault.Drop && !fault.Deliver:
		s.drop(w)
		return
	}
	if msg := validateBody(body); msg != "" {
		s.fail(w, http.StatusUnprocessableEntity, "validation_error", msg)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	sum := sha256.Sum256(raw)
	if prev, ok := s.byKey[key]; ok && key != "" {
		if prev.payload != sum {
			s.fail(w, http.StatusConflict, "invalid_idempotent_request", "Same idempotency key used with a different request payload.")
			return
		}
		s.reply(w, http.StatusOK, map[string]string{"id": prev.id})
		return
	}
	id := fmt.Sprintf("email_%d", len(s.deliveries)+1)
	if key != "" {
		s.byKey[key] = keyedSend{payload: sum, id: id}
	}
	s.deliveries = append(s.deliveries, Delivery{ID: id, Header: r.Header.Clone(), Body: body})
	switch {
	case fault.Drop:
		s.drop(w)
	case fault.Garble:
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write([]byte(`{"id":"` + id))
		assert.NoError(s.tb, err)
	default:
		s.reply(w, http.StatusOK, map[string]string{"id": id})
	}
}

// validateBody is the part of Resend's validation the notifier meets.
func validateBody(b Body) string {
	switch {
	case b.From == "":
		return "Missing `from` field."
	case len(b.To) == 0:
		return "Missing `to` field."
	case b.Subject == "":
		return "Missing `subject` field."
	case b.HTML == "" && b.Text == "":
		return "Missing `html` or `text` field."
	}
	for _, a := range append([]string{b.From}, b.To...) {
		if _, err := mail.ParseAddress(a); err != nil {
			return fmt.Sprintf("Invalid address %q: use `email@example.com` or `Name <email@example.com>`.", a)
		}
	}
	return ""
}

func (s *StandIn) fail(w http.ResponseWriter, status int, name, message string) {
	s.reply(w, status, map[string]any{"statusCode": status, "name": name, "message": message})
}

func (s *StandIn) reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	assert.NoError(s.tb, json.NewEncoder(w).Encode(body)) // assert: this is the server's goroutine
	_, err := w.Write(bytes.Repeat([]byte(" "), s.Pad))
	assert.NoError(s.tb, err)
}

func (s *StandIn) drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if assert.NoError(s.tb, err) {
		assert.NoError(s.tb, conn.Close())
	}
}

// FailNext makes the next requests fail, one fault each.
func (s *StandIn) FailNext(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

// Delivered returns the emails the stand-in accepted, in order.
func (s *StandIn) Delivered() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// Requests is how many requests the stand-in received.
func (s *StandIn) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Recipients is a Recipient lookup over a map of user ID to {email, name}.
func Recipients(m map[string][2]string) func(context.Context, string) (string, string, error) {
	return func(_ context.Context, userID string) (string, string, error) {
		r := m[userID]
		return r[0], r[1], nil
	}
}

// Config is a resendnotify.Config for the stand-in, with users u1
// (Email, "Jane Doe") and anon.
func Config(s *StandIn) resendnotify.Config {
	return resendnotify.Config{
		APIKey:    Key,
		From:      "Acme <billing@acme.example>",
		BaseURL:   s.URL(),
		Recipient: Recipients(map[string][2]string{"u1": {Email, "Jane Doe"}, "anon": {"anon@example.com", ""}}),
	}
}

// Notifier returns a resendnotify.Notifier for cfg.
func Notifier(tb testing.TB, cfg resendnotify.Config) *resendnotify.Notifier {
	tb.Helper()
	r, err := resendnotify.New(cfg)
	require.NoError(tb, err)
	return r
}

// URL is the stand-in's base URL, for Config.BaseURL.
func (s *StandIn) URL() string { return s.srv.URL }

// Conns is how many connections clients opened to the stand-in.
func (s *StandIn) Conns() int64 { return s.conns.Load() }

// T0 is when UpgradePrompt's notifications are created.
var T0 = time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)

// UpgradePrompt is an UpgradePrompt notification with ID id, for user u1.
func UpgradePrompt(id string) freemium.Notification {
	return freemium.Notification{
		ID: id, Kind: freemium.UpgradePrompt, UserID: "u1", CreatedAt: T0,
		UpgradeURL: "https://app.example/upgrade?plan=pro&from=email",
		Usage: freemium.Usage{Plan: "free", Used: 10_250, Limit: 10_000, Percentage: 102.5, Warning: true,
			PeriodStart: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), PeriodEnd: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
	}
}
