package resendnotify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/internal/resendtest"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/resendnotify"
)

func TestResendSendsTheEmail(t *testing.T) {
	ctx := context.Background()
	s := resendtest.New(t)
	cfg := resendtest.Config(s)
	cfg.ReplyTo = "support@acme.example"
	r := resendtest.Notifier(t, cfg)

	id, err := r.Send(ctx, resendtest.UpgradePrompt("ntf_1"))
	require.NoError(t, err)
	require.Len(t, s.Delivered(), 1)
	d := s.Delivered()[0]
	assert.Equal(t, d.ID, id, "Send returns Resend's message ID")
	assert.Equal(t, "Bearer "+resendtest.Key, d.Header.Get("Authorization"))
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

	n := resendtest.UpgradePrompt("ntf_2")
	n.UserID = "anon"
	require.NoError(t, r.Notify(ctx, n))
	d = s.Delivered()[1]
	assert.Equal(t, []string{"anon@example.com"}, d.Body.To, "no name, no display name")
	assert.Equal(t, "ntf_2", d.Header.Get("Idempotency-Key"))
	assert.Contains(t, d.Body.Text, "Hi,\n")
}

func TestResendSameIDDeliversOnce(t *testing.T) {
	ctx := context.Background()
	s := resendtest.New(t)
	r := resendtest.Notifier(t, resendtest.Config(s))
	id1, err := r.Send(ctx, resendtest.UpgradePrompt("ntf_1"))
	require.NoError(t, err)
	id2, err := r.Send(ctx, resendtest.UpgradePrompt("ntf_1"))
	require.NoError(t, err)
	assert.Equal(t, id1, id2, "a repeated ID gets the first send's message ID")
	assert.Len(t, s.Delivered(), 1)
	assert.Equal(t, 2, s.Requests())

	// Delivered, and the reply lost with the connection: the retry with the
	// same key is not a second email.
	s.FailNext(resendtest.Fault{Drop: true, Deliver: true})
	err = r.Notify(ctx, resendtest.UpgradePrompt("ntf_2"))
	var ne *freemium.NotifyError
	require.ErrorAs(t, err, &ne)
	assert.False(t, ne.Permanent)
	require.NoError(t, r.Notify(ctx, resendtest.UpgradePrompt("ntf_2")))
	assert.Len(t, s.Delivered(), 2)

	// Delivered, and the reply cut short.
	s.FailNext(resendtest.Fault{Garble: true, Deliver: true})
	_, err = r.Send(ctx, resendtest.UpgradePrompt("ntf_3"))
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, http.StatusOK, ne.Status)
	assert.False(t, ne.Permanent)
	id, err := r.Send(ctx, resendtest.UpgradePrompt("ntf_3"))
	require.NoError(t, err)
	assert.Len(t, s.Delivered(), 3)
	assert.Equal(t, s.Delivered()[2].ID, id)
}

func TestResendParallel(t *testing.T) {
	ctx := context.Background()
	s := resendtest.New(t)
	r := resendtest.Notifier(t, resendtest.Config(s))
	s.FailNext(resendtest.Fault{Status: 500}, resendtest.Fault{Status: 422}, resendtest.Fault{Drop: true})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 80 { // 4 sends of each ID: the 3 failures leave one of each
		wg.Go(func() {
			if r.Notify(ctx, resendtest.UpgradePrompt(fmt.Sprint("ntf_", i%20))) != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(3), failed.Load())
	assert.Len(t, s.Delivered(), 20, "80 sends of 20 IDs deliver 20 emails")
}

func TestResendErrorsSayHowToRetry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		fault      resendtest.Fault
		status     int
		permanent  bool
		retryAfter time.Duration
		contains   string
	}{
		{"500 is retried", resendtest.Fault{Status: 500}, 500, false, 0, "internal_server_error"},
		{"503 is retried", resendtest.Fault{Status: 503, Name: "service_unavailable"}, 503, false, 0, "service_unavailable"},
		{"429 waits for retry-after", resendtest.Fault{Status: 429, RetryAfter: "7"}, 429, false, 7 * time.Second, "rate_limit_exceeded"},
		{"429 without retry-after", resendtest.Fault{Status: 429}, 429, false, 0, "rate_limit_exceeded"},
		{"422 is permanent", resendtest.Fault{Status: 422}, 422, true, 0, "validation_error"},
		{"409 on a concurrent request with the key is retried", resendtest.Fault{Status: 409, Name: "concurrent_idempotent_requests"}, 409, false, 0, "concurrent_idempotent_requests"},
		{"409 on another payload with the key is permanent", resendtest.Fault{Status: 409, Name: "invalid_idempotent_request"}, 409, true, 0, "invalid_idempotent_request"},
		{"429 waits until a retry-after date", resendtest.Fault{Status: 429, Header: map[string]string{
			"Date": "Sun, 15 Nov 2026 10:00:00 GMT", "Retry-After": "Sun, 15 Nov 2026 10:00:30 GMT"}}, 429, false, 30 * time.Second, "rate_limit_exceeded"},
		{"429 waits for ratelimit-reset without retry-after", resendtest.Fault{Status: 429, Header: map[string]string{"Ratelimit-Reset": "3"}},
			429, false, 3 * time.Second, "rate_limit_exceeded"},
		{"a dropped connection is retried", resendtest.Fault{Drop: true}, 0, false, 0, "resend"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := resendtest.New(t)
			r := resendtest.Notifier(t, resendtest.Config(s))
			s.FailNext(tc.fault)
			err := r.Notify(ctx, resendtest.UpgradePrompt("ntf_1"))
			var ne *freemium.NotifyError
			require.ErrorAs(t, err, &ne)
			assert.Equal(t, tc.status, ne.Status)
			assert.Equal(t, tc.permanent, ne.Permanent)
			assert.Equal(t, tc.retryAfter, ne.RetryAfter)
			assert.Contains(t, err.Error(), tc.contains)
			assertNoSecrets(t, err)
			assert.Equal(t, 1, s.Requests(), "the notifier does not retry by itself: the dispatcher does")
			assert.Empty(t, s.Delivered())

			require.NoError(t, r.Notify(ctx, resendtest.UpgradePrompt("ntf_1")), "the next try, with the same key")
			assert.Len(t, s.Delivered(), 1)
		})
	}
}

// assertNoSecrets checks that err tells neither the API key nor the
// recipient's address, in any case, at any depth.
func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		msg := strings.ToLower(e.Error())
		assert.NotContains(t, msg, strings.ToLower(resendtest.Key))
		assert.NotContains(t, msg, strings.ToLower(resendtest.Email))
	}
}

func TestResendErrorsOmitKeyAndAddress(t *testing.T) {
	ctx := context.Background()
	s := resendtest.New(t)

	// The stand-in quotes the key it refuses.
	cfg := resendtest.Config(s)
	cfg.APIKey = strings.ToUpper(resendtest.Key)
	r := resendtest.Notifier(t, cfg)
	err := r.Notify(ctx, resendtest.UpgradePrompt("ntf_1"))
	var ne *freemium.NotifyError
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, http.StatusForbidden, ne.Status)
	assert.True(t, ne.Permanent, "a wrong key fails again")
	assert.Contains(t, err.Error(), "invalid_api_key")
	assertNoSecrets(t, err)

	// A validation error that quotes the address, lower-cased.
	cfg = resendtest.Config(s)
	r = resendtest.Notifier(t, cfg)
	s.FailNext(resendtest.Fault{Status: 422})
	err = r.Notify(ctx, resendtest.UpgradePrompt("ntf_2"))
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Permanent)
	assert.Contains(t, err.Error(), "[redacted]", "the rest of the message stays")
	assertNoSecrets(t, err)

	cfg.Recipient = resendtest.Recipients(map[string][2]string{"u1": {"Jane.Doe@Example.com", "Jane"}})
	r = resendtest.Notifier(t, cfg)
	s.FailNext(resendtest.Fault{Status: 422})
	err = r.Notify(ctx, resendtest.UpgradePrompt("ntf_3"))
	require.Error(t, err)
	assertNoSecrets(t, err)
}

func TestResendRecipient(t *testing.T) {
	ctx := context.Background()
	s := resendtest.New(t)
	cfg := resendtest.Config(s)
	lookupDown := errors.New("user directory down")
	gone := &freemium.NotifyError{Permanent: true, Err: errors.New("user deleted")}
	cfg.Recipient = func(_ context.Context, userID string) (string, string, error) {
		switch userID {
		case "user-down":
			return "", "", lookupDown
		case "gone":
			return "", "", gone
		case "bad":
			return "not an address " + resendtest.Email, "", nil
		case "named":
			return "Jane <" + resendtest.Email + ">", "", nil
		}
		return "", "", nil
	}
	r := resendtest.Notifier(t, cfg)
	send := func(user string) error {
		n := resendtest.UpgradePrompt("ntf_" + user)
		n.UserID = user
		return r.Notify(ctx, n)
	}
	permanent := func(err error) bool {
		var ne *freemium.NotifyError
		return errors.As(err, &ne) && ne.Permanent
	}

	err := send("user-down")
	assert.ErrorIs(t, err, lookupDown)
	assert.False(t, permanent(err), "a failed lookup is retried")
	// The Gate's log record names the user, hashed or not as its Config
	// says; an error that named it too would undo that.
	assert.NotContains(t, err.Error(), "user-down", "the error leaves the user to the log record")

	err = send("gone")
	assert.ErrorIs(t, err, gone)
	assert.True(t, permanent(err), "a lookup may say it is permanent")

	err = send("none")
	assert.ErrorIs(t, err, freemium.ErrNoRecipient)
	assert.True(t, permanent(err))
	assert.NotContains(t, err.Error(), "none")

	for _, user := range []string{"bad", "named"} {
		err = send(user)
		assert.True(t, permanent(err), user)
		assert.NotContains(t, err.Error(), user)
		assertNoSecrets(t, err)
	}
	assert.Zero(t, s.Requests(), "nothing reached Resend")
}

func TestResendRefusesInvalidNotifications(t *testing.T) {
	ctx := context.Background()
	s := resendtest.New(t)
	r := resendtest.Notifier(t, resendtest.Config(s))
	for name, edit := range map[string]func(*freemium.Notification){
		"empty ID":      func(n *freemium.Notification) { n.ID = "" },
		"long ID":       func(n *freemium.Notification) { n.ID = strings.Repeat("x", 257) },
		"control in ID": func(n *freemium.Notification) { n.ID = "a\nb" },
		"unknown kind":  func(n *freemium.Notification) { n.Kind = "welcome" },
		"empty user":    func(n *freemium.Notification) { n.UserID = "" },
	} {
		n := resendtest.UpgradePrompt("ntf_1")
		edit(&n)
		err := r.Notify(ctx, n)
		var ne *freemium.NotifyError
		require.ErrorAs(t, err, &ne, name)
		assert.True(t, ne.Permanent, name)
	}
	assert.Zero(t, s.Requests())
}

func TestResendCanceledContext(t *testing.T) {
	s := resendtest.New(t)
	r := resendtest.Notifier(t, resendtest.Config(s))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.Notify(ctx, resendtest.UpgradePrompt("ntf_1"))
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
			s := resendtest.New(t)
			s.Pad = pad
			r := resendtest.Notifier(t, resendtest.Config(s))
			for i := range 50 {
				if i%10 == 5 {
					s.FailNext(resendtest.Fault{Status: 500}, resendtest.Fault{Status: 429, RetryAfter: "1"}, resendtest.Fault{Status: 422})
					for range 3 {
						require.Error(t, r.Notify(ctx, resendtest.UpgradePrompt(fmt.Sprint("ntf_fail_", i))))
					}
				}
				require.NoError(t, r.Notify(ctx, resendtest.UpgradePrompt(fmt.Sprint("ntf_", i))))
			}
			assert.Len(t, s.Delivered(), 50)
			assert.Equal(t, int64(1), s.Conns(), "65 sequential sends, successes and errors, on one connection")
		})
	}
}

func TestNewResendNotifierValidates(t *testing.T) {
	s := resendtest.New(t)
	tests := []struct {
		name string
		edit func(*resendnotify.Config)
		want string
	}{
		{"no key", func(c *resendnotify.Config) { c.APIKey = "" }, "resendnotify: Config.APIKey is empty"},
		{"key with a space", func(c *resendnotify.Config) { c.APIKey = "re_a b" }, "resendnotify: Config.APIKey has spaces"},
		{"no From", func(c *resendnotify.Config) { c.From = "" }, "resendnotify: Config.From is empty"},
		{"bad From", func(c *resendnotify.Config) { c.From = "Acme billing" }, "resendnotify: Config.From"},
		{"bad ReplyTo", func(c *resendnotify.Config) { c.ReplyTo = "support" }, "resendnotify: Config.ReplyTo"},
		{"no Recipient", func(c *resendnotify.Config) { c.Recipient = nil }, "resendnotify: Config.Recipient is nil"},
		{"bad BaseURL", func(c *resendnotify.Config) { c.BaseURL = "localhost:8025" }, "resendnotify: Config.BaseURL"},
		{"unknown kind", func(c *resendnotify.Config) {
			c.Subjects = map[freemium.NotificationKind]string{"welcome": "Hi"}
		}, `resendnotify: Config.Subjects has kind "welcome"`},
		{"subject that does not parse", func(c *resendnotify.Config) {
			c.Subjects = map[freemium.NotificationKind]string{freemium.LimitReached: "{{.Percent"}
		}, "resendnotify: Config.Subjects[limit_reached]"},
		{"HTML that names no field", func(c *resendnotify.Config) {
			c.HTMLTemplates = map[freemium.NotificationKind]string{freemium.UsageWarning: "<p>{{.Plan}}</p>"}
		}, "resendnotify: Config.HTMLTemplates[usage_warning]"},
		{"text that does not parse", func(c *resendnotify.Config) {
			c.TextTemplates = map[freemium.NotificationKind]string{freemium.UpgradePrompt: "{{if}}"}
		}, "resendnotify: Config.TextTemplates[upgrade_prompt]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := resendtest.Config(s)
			tc.edit(&cfg)
			_, err := resendnotify.New(cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), resendtest.Key)
		})
	}
	cfg := resendtest.Config(s)
	cfg.APIKey = " " + resendtest.Key + "\n"
	cfg.BaseURL = s.URL() + "/" // with or without the slash
	require.NoError(t, resendtest.Notifier(t, cfg).Notify(context.Background(), resendtest.UpgradePrompt("ntf_1")),
		"a key read from a file with its newline works")
	assert.Equal(t, "Bearer "+resendtest.Key, s.Delivered()[0].Header.Get("Authorization"))
}

// The dispatcher must send 200 emails a second to a local stand-in; the
// notifier alone must be far above that. The baseline is the same request
// made with net/http alone.
func BenchmarkResendNotify(b *testing.B) {
	ctx := context.Background()
	s := resendtest.New(b)
	r := resendtest.Notifier(b, resendtest.Config(s))
	raw := &http.Client{}
	payload := `{"from":"Acme <billing@acme.example>","to":["jane.doe@example.com"],"subject":"Hi","text":"Hello"}`
	var sendT time.Duration
	b.ReportAllocs()
	testenv.Measure(b, func(i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/emails", strings.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+resendtest.Key)
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
		err := r.Notify(ctx, resendtest.UpgradePrompt(fmt.Sprint("ntf_", i)))
		sendT += time.Since(t0)
		return err
	})
	b.ReportMetric(float64(b.N)/sendT.Seconds(), "emails/s")
	b.ReportMetric(float64(s.Conns()), "conns")
}
