package freemium_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
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
)

const (
	testResendKey = "re_test_freemium_5ecret"
	testEmail     = "jane.doe@example.com"
)

// resendStandIn behaves like Resend's POST /emails: it checks the bearer key
// and the JSON body, replies {"id": ...}, and, as Resend does, answers a
// repeated Idempotency-Key with the first reply and no second delivery (and
// a 409 when the payload differs). It can fail the next requests with a
// status, or drop their connections, before or after delivering. Its error
// messages quote the request, as a pessimistic stand-in for Resend's: the
// notifier must keep the address and key out of its errors anyway.
type resendStandIn struct {
	tb  testing.TB
	srv *httptest.Server

	mu         sync.Mutex
	byKey      map[string]keyedSend
	deliveries []resendDelivery
	faults     []resendFault
	requests   int
	pad        int          // bytes of whitespace after each reply's JSON
	conns      atomic.Int64 // connections opened
}

// keyedSend is the first send with an idempotency key.
type keyedSend struct {
	payload [32]byte
	id      string
}

// resendDelivery is an email the stand-in accepted.
type resendDelivery struct {
	ID     string
	Header http.Header
	Body   resendBody
}

// resendBody is the JSON of POST /emails, every field resend-go may send.
type resendBody struct {
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

// resendFault is what the stand-in does to one request instead of serving it.
type resendFault struct {
	status     int               // reply with this status and a Resend-style error
	name       string            // the error's name; default from the status
	retryAfter string            // the Retry-After header of the reply
	header     map[string]string // more headers of the reply
	drop       bool              // close the connection without a reply
	deliver    bool              // with drop or garble: deliver the email first
	garble     bool              // reply 200 with a body cut short
}

func newResendStandIn(tb testing.TB) *resendStandIn {
	s := &resendStandIn{tb: tb, byKey: map[string]keyedSend{}}
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

func (s *resendStandIn) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	var fault resendFault
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
	case auth != "Bearer "+testResendKey:
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
	var body resendBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		s.fail(w, http.StatusUnprocessableEntity, "validation_error", "Invalid JSON: "+err.Error())
		return
	}
	switch {
	case fault.status != 0:
		if fault.retryAfter != "" {
			w.Header().Set("Retry-After", fault.retryAfter)
		}
		for k, v := range fault.header {
			w.Header().Set(k, v)
		}
		name := fault.name
		if name == "" {
			name = map[int]string{422: "validation_error", 429: "rate_limit_exceeded", 500: "internal_server_error"}[fault.status]
		}
		s.fail(w, fault.status, name, fmt.Sprintf("Stand-in failure for the email to %q.", strings.ToLower(strings.Join(body.To, ", "))))
		return
	case fault.drop && !fault.deliver:
		s.drop(w)
		return
	}
	if msg := validateResendBody(body); msg != "" {
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
	s.deliveries = append(s.deliveries, resendDelivery{ID: id, Header: r.Header.Clone(), Body: body})
	switch {
	case fault.drop:
		s.drop(w)
	case fault.garble:
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write([]byte(`{"id":"` + id))
		assert.NoError(s.tb, err)
	default:
		s.reply(w, http.StatusOK, map[string]string{"id": id})
	}
}

// validateResendBody is the part of Resend's validation the notifier meets.
func validateResendBody(b resendBody) string {
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

func (s *resendStandIn) fail(w http.ResponseWriter, status int, name, message string) {
	s.reply(w, status, map[string]any{"statusCode": status, "name": name, "message": message})
}

func (s *resendStandIn) reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	assert.NoError(s.tb, json.NewEncoder(w).Encode(body)) // assert: this is the server's goroutine
	_, err := w.Write(bytes.Repeat([]byte(" "), s.pad))
	assert.NoError(s.tb, err)
}

func (s *resendStandIn) drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if assert.NoError(s.tb, err) {
		assert.NoError(s.tb, conn.Close())
	}
}

// failNext makes the next requests fail, one fault each.
func (s *resendStandIn) failNext(faults ...resendFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

func (s *resendStandIn) delivered() []resendDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]resendDelivery(nil), s.deliveries...)
}

func (s *resendStandIn) requestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// recipients is a Recipient lookup over a map of user ID to {email, name}.
func recipients(m map[string][2]string) func(context.Context, string) (string, string, error) {
	return func(_ context.Context, userID string) (string, string, error) {
		r := m[userID]
		return r[0], r[1], nil
	}
}

func resendConfig(s *resendStandIn) freemium.ResendConfig {
	return freemium.ResendConfig{
		APIKey:    testResendKey,
		From:      "Acme <billing@acme.example>",
		BaseURL:   s.srv.URL,
		Recipient: recipients(map[string][2]string{"u1": {testEmail, "Jane Doe"}, "anon": {"anon@example.com", ""}}),
	}
}

func newResendNotifier(tb testing.TB, cfg freemium.ResendConfig) *freemium.ResendNotifier {
	tb.Helper()
	r, err := freemium.NewResendNotifier(cfg)
	require.NoError(tb, err)
	return r
}

var resendT0 = time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)

func upgradePrompt(id string) freemium.Notification {
	return freemium.Notification{
		ID: id, Kind: freemium.UpgradePrompt, UserID: "u1", CreatedAt: resendT0,
		UpgradeURL: "https://app.example/upgrade?plan=pro&from=email",
		Usage: freemium.Usage{Plan: "free", Used: 10_250, Limit: 10_000, Percentage: 102.5, Warning: true,
			PeriodStart: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), PeriodEnd: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
	}
}

func TestResendSendsTheEmail(t *testing.T) {
	ctx := context.Background()
	s := newResendStandIn(t)
	cfg := resendConfig(s)
	cfg.ReplyTo = "support@acme.example"
	r := newResendNotifier(t, cfg)

	id, err := r.Send(ctx, upgradePrompt("ntf_1"))
	require.NoError(t, err)
	require.Len(t, s.delivered(), 1)
	d := s.delivered()[0]
	assert.Equal(t, d.ID, id, "Send returns Resend's message ID")
	assert.Equal(t, "Bearer "+testResendKey, d.Header.Get("Authorization"))
	assert.Equal(t, "application/json", d.Header.Get("Content-Type"))
	assert.Equal(t, "ntf_1", d.Header.Get("Idempotency-Key"))
	assert.Equal(t, "Acme <billing@acme.example>", d.Body.From)
	assert.Equal(t, []string{`"Jane Doe" <jane.doe@example.com>`}, d.Body.To)
	assert.Equal(t, "support@acme.example", d.Body.ReplyTo)
	assert.Equal(t, "You've reached the free plan's limit: upgrade to continue", d.Body.Subject)
	assert.Contains(t, d.Body.HTML, `href="https://app.example/upgrade?plan=pro&amp;from=email"`)
	assert.Contains(t, d.Body.HTML, "Hi Jane Doe,")
	assert.Contains(t, d.Body.Text, "10,250 of the 10,000 tokens")
	assert.Contains(t, d.Body.Text, "resets on December 1, 2026")
	assert.Contains(t, d.Body.Text, "https://app.example/upgrade?plan=pro&from=email")
	assert.Empty(t, d.Body.Cc)
	assert.Empty(t, d.Body.Bcc)

	n := upgradePrompt("ntf_2")
	n.UserID = "anon"
	require.NoError(t, r.Notify(ctx, n))
	d = s.delivered()[1]
	assert.Equal(t, []string{"anon@example.com"}, d.Body.To, "no name, no display name")
	assert.Equal(t, "ntf_2", d.Header.Get("Idempotency-Key"))
	assert.Contains(t, d.Body.Text, "Hi,\n")
}

func TestResendSameIDDeliversOnce(t *testing.T) {
	ctx := context.Background()
	s := newResendStandIn(t)
	r := newResendNotifier(t, resendConfig(s))
	id1, err := r.Send(ctx, upgradePrompt("ntf_1"))
	require.NoError(t, err)
	id2, err := r.Send(ctx, upgradePrompt("ntf_1"))
	require.NoError(t, err)
	assert.Equal(t, id1, id2, "a repeated ID gets the first send's message ID")
	assert.Len(t, s.delivered(), 1)
	assert.Equal(t, 2, s.requestCount())

	// Delivered, and the reply lost with the connection: the retry with the
	// same key is not a second email.
	s.failNext(resendFault{drop: true, deliver: true})
	err = r.Notify(ctx, upgradePrompt("ntf_2"))
	var ne *freemium.NotifyError
	require.ErrorAs(t, err, &ne)
	assert.False(t, ne.Permanent)
	require.NoError(t, r.Notify(ctx, upgradePrompt("ntf_2")))
	assert.Len(t, s.delivered(), 2)

	// Delivered, and the reply cut short.
	s.failNext(resendFault{garble: true, deliver: true})
	_, err = r.Send(ctx, upgradePrompt("ntf_3"))
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, http.StatusOK, ne.Status)
	assert.False(t, ne.Permanent)
	id, err := r.Send(ctx, upgradePrompt("ntf_3"))
	require.NoError(t, err)
	assert.Len(t, s.delivered(), 3)
	assert.Equal(t, s.delivered()[2].ID, id)
}

func TestResendParallel(t *testing.T) {
	ctx := context.Background()
	s := newResendStandIn(t)
	r := newResendNotifier(t, resendConfig(s))
	s.failNext(resendFault{status: 500}, resendFault{status: 422}, resendFault{drop: true})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 80 { // 4 sends of each ID: the 3 failures leave one of each
		wg.Go(func() {
			if r.Notify(ctx, upgradePrompt(fmt.Sprint("ntf_", i%20))) != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(3), failed.Load())
	assert.Len(t, s.delivered(), 20, "80 sends of 20 IDs deliver 20 emails")
}

func TestResendErrorsSayHowToRetry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		fault      resendFault
		status     int
		permanent  bool
		retryAfter time.Duration
		contains   string
	}{
		{"500 is retried", resendFault{status: 500}, 500, false, 0, "internal_server_error"},
		{"503 is retried", resendFault{status: 503, name: "service_unavailable"}, 503, false, 0, "service_unavailable"},
		{"429 waits for retry-after", resendFault{status: 429, retryAfter: "7"}, 429, false, 7 * time.Second, "rate_limit_exceeded"},
		{"429 without retry-after", resendFault{status: 429}, 429, false, 0, "rate_limit_exceeded"},
		{"422 is permanent", resendFault{status: 422}, 422, true, 0, "validation_error"},
		{"409 on a concurrent request with the key is retried", resendFault{status: 409, name: "concurrent_idempotent_requests"}, 409, false, 0, "concurrent_idempotent_requests"},
		{"409 on another payload with the key is permanent", resendFault{status: 409, name: "invalid_idempotent_request"}, 409, true, 0, "invalid_idempotent_request"},
		{"429 waits until a retry-after date", resendFault{status: 429, header: map[string]string{
			"Date": "Sun, 15 Nov 2026 10:00:00 GMT", "Retry-After": "Sun, 15 Nov 2026 10:00:30 GMT"}}, 429, false, 30 * time.Second, "rate_limit_exceeded"},
		{"429 waits for ratelimit-reset without retry-after", resendFault{status: 429, header: map[string]string{"Ratelimit-Reset": "3"}},
			429, false, 3 * time.Second, "rate_limit_exceeded"},
		{"a dropped connection is retried", resendFault{drop: true}, 0, false, 0, "resend"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newResendStandIn(t)
			r := newResendNotifier(t, resendConfig(s))
			s.failNext(tc.fault)
			err := r.Notify(ctx, upgradePrompt("ntf_1"))
			var ne *freemium.NotifyError
			require.ErrorAs(t, err, &ne)
			assert.Equal(t, tc.status, ne.Status)
			assert.Equal(t, tc.permanent, ne.Permanent)
			assert.Equal(t, tc.retryAfter, ne.RetryAfter)
			assert.Contains(t, err.Error(), tc.contains)
			assertNoSecrets(t, err)
			assert.Equal(t, 1, s.requestCount(), "the notifier does not retry by itself: the dispatcher does")
			assert.Empty(t, s.delivered())

			require.NoError(t, r.Notify(ctx, upgradePrompt("ntf_1")), "the next try, with the same key")
			assert.Len(t, s.delivered(), 1)
		})
	}
}

// assertNoSecrets checks that err tells neither the API key nor the
// recipient's address, in any case, at any depth.
func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		msg := strings.ToLower(e.Error())
		assert.NotContains(t, msg, strings.ToLower(testResendKey))
		assert.NotContains(t, msg, strings.ToLower(testEmail))
	}
}

func TestResendErrorsOmitKeyAndAddress(t *testing.T) {
	ctx := context.Background()
	s := newResendStandIn(t)

	// The stand-in quotes the key it refuses.
	cfg := resendConfig(s)
	cfg.APIKey = strings.ToUpper(testResendKey)
	r := newResendNotifier(t, cfg)
	err := r.Notify(ctx, upgradePrompt("ntf_1"))
	var ne *freemium.NotifyError
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, http.StatusForbidden, ne.Status)
	assert.True(t, ne.Permanent, "a wrong key fails again")
	assert.Contains(t, err.Error(), "invalid_api_key")
	assertNoSecrets(t, err)

	// A validation error that quotes the address, lower-cased.
	cfg = resendConfig(s)
	r = newResendNotifier(t, cfg)
	s.failNext(resendFault{status: 422})
	err = r.Notify(ctx, upgradePrompt("ntf_2"))
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Permanent)
	assert.Contains(t, err.Error(), "[redacted]", "the rest of the message stays")
	assertNoSecrets(t, err)

	cfg.Recipient = recipients(map[string][2]string{"u1": {"Jane.Doe@Example.com", "Jane"}})
	r = newResendNotifier(t, cfg)
	s.failNext(resendFault{status: 422})
	err = r.Notify(ctx, upgradePrompt("ntf_3"))
	require.Error(t, err)
	assertNoSecrets(t, err)
}

func TestResendRecipient(t *testing.T) {
	ctx := context.Background()
	s := newResendStandIn(t)
	cfg := resendConfig(s)
	lookupDown := errors.New("user directory down")
	gone := &freemium.NotifyError{Permanent: true, Err: errors.New("user deleted")}
	cfg.Recipient = func(_ context.Context, userID string) (string, string, error) {
		switch userID {
		case "down":
			return "", "", lookupDown
		case "gone":
			return "", "", gone
		case "bad":
			return "not an address " + testEmail, "", nil
		case "named":
			return "Jane <" + testEmail + ">", "", nil
		}
		return "", "", nil
	}
	r := newResendNotifier(t, cfg)
	send := func(user string) error {
		n := upgradePrompt("ntf_" + user)
		n.UserID = user
		return r.Notify(ctx, n)
	}
	permanent := func(err error) bool {
		var ne *freemium.NotifyError
		return errors.As(err, &ne) && ne.Permanent
	}

	err := send("down")
	assert.ErrorIs(t, err, lookupDown)
	assert.False(t, permanent(err), "a failed lookup is retried")
	assert.Contains(t, err.Error(), "down", "the error names the user")

	err = send("gone")
	assert.ErrorIs(t, err, gone)
	assert.True(t, permanent(err), "a lookup may say it is permanent")

	err = send("none")
	assert.ErrorIs(t, err, freemium.ErrNoRecipient)
	assert.True(t, permanent(err))

	for _, user := range []string{"bad", "named"} {
		err = send(user)
		assert.True(t, permanent(err), user)
		assertNoSecrets(t, err)
	}
	assert.Zero(t, s.requestCount(), "nothing reached Resend")
}

func TestResendRefusesInvalidNotifications(t *testing.T) {
	ctx := context.Background()
	s := newResendStandIn(t)
	r := newResendNotifier(t, resendConfig(s))
	for name, edit := range map[string]func(*freemium.Notification){
		"empty ID":      func(n *freemium.Notification) { n.ID = "" },
		"long ID":       func(n *freemium.Notification) { n.ID = strings.Repeat("x", 257) },
		"control in ID": func(n *freemium.Notification) { n.ID = "a\nb" },
		"unknown kind":  func(n *freemium.Notification) { n.Kind = "welcome" },
		"empty user":    func(n *freemium.Notification) { n.UserID = "" },
	} {
		n := upgradePrompt("ntf_1")
		edit(&n)
		err := r.Notify(ctx, n)
		var ne *freemium.NotifyError
		require.ErrorAs(t, err, &ne, name)
		assert.True(t, ne.Permanent, name)
	}
	assert.Zero(t, s.requestCount())
}

func TestResendCanceledContext(t *testing.T) {
	s := newResendStandIn(t)
	r := newResendNotifier(t, resendConfig(s))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.Notify(ctx, upgradePrompt("ntf_1"))
	assert.ErrorIs(t, err, context.Canceled)
	var ne *freemium.NotifyError
	require.ErrorAs(t, err, &ne)
	assert.False(t, ne.Permanent)
}

func TestResendReusesConnections(t *testing.T) {
	// resend-go decodes the JSON of a reply and closes the body: whatever
	// follows the JSON (here, whitespace past what its decoder reads at
	// once) would cost the connection, were it not drained.
	for _, pad := range []int{0, 3000} {
		t.Run(fmt.Sprint("pad=", pad), func(t *testing.T) {
			ctx := context.Background()
			s := newResendStandIn(t)
			s.pad = pad
			r := newResendNotifier(t, resendConfig(s))
			for i := range 50 {
				if i%10 == 5 {
					s.failNext(resendFault{status: 500}, resendFault{status: 429, retryAfter: "1"}, resendFault{status: 422})
					for range 3 {
						require.Error(t, r.Notify(ctx, upgradePrompt(fmt.Sprint("ntf_fail_", i))))
					}
				}
				require.NoError(t, r.Notify(ctx, upgradePrompt(fmt.Sprint("ntf_", i))))
			}
			assert.Len(t, s.delivered(), 50)
			assert.Equal(t, int64(1), s.conns.Load(), "65 sequential sends, successes and errors, on one connection")
		})
	}
}

func TestNewResendNotifierValidates(t *testing.T) {
	s := newResendStandIn(t)
	tests := []struct {
		name string
		edit func(*freemium.ResendConfig)
		want string
	}{
		{"no key", func(c *freemium.ResendConfig) { c.APIKey = "" }, "ResendConfig.APIKey is empty"},
		{"key with a space", func(c *freemium.ResendConfig) { c.APIKey = "re_a b" }, "ResendConfig.APIKey has spaces"},
		{"no From", func(c *freemium.ResendConfig) { c.From = "" }, "ResendConfig.From is empty"},
		{"bad From", func(c *freemium.ResendConfig) { c.From = "Acme billing" }, "ResendConfig.From"},
		{"bad ReplyTo", func(c *freemium.ResendConfig) { c.ReplyTo = "support" }, "ResendConfig.ReplyTo"},
		{"no Recipient", func(c *freemium.ResendConfig) { c.Recipient = nil }, "ResendConfig.Recipient is nil"},
		{"bad BaseURL", func(c *freemium.ResendConfig) { c.BaseURL = "localhost:8025" }, "ResendConfig.BaseURL"},
		{"unknown kind", func(c *freemium.ResendConfig) {
			c.Subjects = map[freemium.NotificationKind]string{"welcome": "Hi"}
		}, `ResendConfig.Subjects has kind "welcome"`},
		{"subject that does not parse", func(c *freemium.ResendConfig) {
			c.Subjects = map[freemium.NotificationKind]string{freemium.LimitReached: "{{.Percent"}
		}, "ResendConfig.Subjects[limit_reached]"},
		{"HTML that names no field", func(c *freemium.ResendConfig) {
			c.HTMLTemplates = map[freemium.NotificationKind]string{freemium.UsageWarning: "<p>{{.Plan}}</p>"}
		}, "ResendConfig.HTMLTemplates[usage_warning]"},
		{"text that does not parse", func(c *freemium.ResendConfig) {
			c.TextTemplates = map[freemium.NotificationKind]string{freemium.UpgradePrompt: "{{if}}"}
		}, "ResendConfig.TextTemplates[upgrade_prompt]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := resendConfig(s)
			tc.edit(&cfg)
			_, err := freemium.NewResendNotifier(cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), testResendKey)
		})
	}
	cfg := resendConfig(s)
	cfg.APIKey = " " + testResendKey + "\n"
	cfg.BaseURL = s.srv.URL + "/" // with or without the slash
	require.NoError(t, newResendNotifier(t, cfg).Notify(context.Background(), upgradePrompt("ntf_1")),
		"a key read from a file with its newline works")
	assert.Equal(t, "Bearer "+testResendKey, s.delivered()[0].Header.Get("Authorization"))
}

// The dispatcher must send 200 emails a second to a local stand-in; the
// notifier alone must be far above that. The baseline is the same request
// made with net/http alone.
func BenchmarkResendNotify(b *testing.B) {
	ctx := context.Background()
	s := newResendStandIn(b)
	r := newResendNotifier(b, resendConfig(s))
	raw := &http.Client{}
	payload := `{"from":"Acme <billing@acme.example>","to":["jane.doe@example.com"],"subject":"Hi","text":"Hello"}`
	var sendT time.Duration
	b.ReportAllocs()
	measure(b, func(i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.srv.URL+"/emails", strings.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+testResendKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", fmt.Sprint("raw_", i))
		resp, err := raw.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out struct{ ID string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("raw send: %d, %v", resp.StatusCode, err)
		}
		return nil
	}, func(i int) error {
		t0 := time.Now()
		err := r.Notify(ctx, upgradePrompt(fmt.Sprint("ntf_", i)))
		sendT += time.Since(t0)
		return err
	})
	b.ReportMetric(float64(b.N)/sendT.Seconds(), "emails/s")
	b.ReportMetric(float64(s.conns.Load()), "conns")
}
