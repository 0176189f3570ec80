package resendnotify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/resend/resend-go/v2"

	"github.com/freemiumkit/freemium"
)

// Config configures a Notifier.
//
// The templates are Go templates executed with an EmailData; a kind left
// out of a map keeps its default. The defaults (in templates/) say how
// much of the allowance is used, when it resets, and link to UpgradeURL with
// a button.
type Config struct {
	// APIKey is the Resend API key. Required.
	APIKey string

	// From is the sender: an address on a domain verified with Resend,
	// with or without a name, such as "Acme <billing@acme.example>".
	// Required.
	From string

	// ReplyTo is the address replies go to. Default "": replies go to From.
	ReplyTo string

	// Recipient returns the user's email address, and their name for the
	// To header and the greeting ("" for none). An empty address means the
	// user has none: Notify fails permanently with ErrNoRecipient. An error
	// is temporary, unless it wraps a *NotifyError with Permanent set.
	// Required.
	Recipient func(ctx context.Context, userID string) (email, name string, err error)

	// Subjects are text/template sources of the subject lines, by kind.
	// Default: "You've used {{.Percent}}% of your {{.Usage.Plan}} allowance",
	// "You've reached the free plan's limit: upgrade to continue" and
	// "You've reached the limit of your {{.Usage.Plan}} plan".
	Subjects map[freemium.NotificationKind]string

	// HTMLTemplates are html/template sources of the HTML bodies, by kind;
	// html/template escapes every value for where it is put, and replaces an
	// unsafe URL (javascript:) in an href by "#ZgotmplZ". Default:
	// templates/KIND.html.
	HTMLTemplates map[freemium.NotificationKind]string

	// TextTemplates are text/template sources of the plain-text bodies, by
	// kind. Default: templates/KIND.txt.
	TextTemplates map[freemium.NotificationKind]string

	// BaseURL is the Resend API's base URL, for a stand-in in tests or a
	// proxy. Default: resend-go's, which is Resend's API unless the
	// RESEND_BASE_URL environment variable says otherwise.
	BaseURL string

	// HTTPClient makes the requests. The notifier uses a copy whose
	// Transport also observes each response's status. Its transport's idle
	// connections per host bound how many sends in parallel reuse
	// connections (http.DefaultTransport keeps 2). Default: a client with a
	// 10s timeout on http.DefaultTransport.
	HTTPClient *http.Client
}

// Notifier is a Notifier that sends emails through Resend, with
// resend-go. Every Notify is one request, with Notification.ID as the
// Idempotency-Key, so that a retry within Resend's 24 hours sends no second
// email. Its errors never contain the API key or the recipient's address.
// Safe for simultaneous use.
type Notifier struct {
	client    *resend.Client
	apiKey    string
	from      string
	replyTo   string
	recipient func(ctx context.Context, userID string) (email, name string, err error)
	emails    emails
}

var _ freemium.Notifier = (*Notifier)(nil)

// New returns a Notifier for cfg, or an error that names
// the invalid field and the fix. It checks the templates on sample data.
func New(cfg Config) (*Notifier, error) {
	key := strings.TrimSpace(cfg.APIKey)
	if key == "" {
		return nil, errors.New("resendnotify: Config.APIKey is empty: set the Resend API key")
	}
	if strings.IndexFunc(key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return nil, errors.New("resendnotify: Config.APIKey has spaces or control characters: set the key alone")
	}
	if cfg.From == "" {
		return nil, errors.New(`resendnotify: Config.From is empty: set the sender, such as "Acme <billing@acme.example>"`)
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf(`resendnotify: Config.From %q is not an address: use "you@your-domain" or "Name <you@your-domain>"`, cfg.From)
	}
	if cfg.ReplyTo != "" {
		if _, err := mail.ParseAddress(cfg.ReplyTo); err != nil {
			return nil, fmt.Errorf(`resendnotify: Config.ReplyTo %q is not an address: use "you@your-domain", or "" for replies to From`, cfg.ReplyTo)
		}
	}
	if cfg.Recipient == nil {
		return nil, errors.New("resendnotify: Config.Recipient is nil: set a function that returns a user's email address and name")
	}
	emails, err := parseEmails("Config", cfg.Subjects, cfg.HTMLTemplates, cfg.TextTemplates)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = observingTransport{base: base}
	client := resend.NewCustomClient(hc, key)
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("resendnotify: Config.BaseURL %q is not an http(s) URL: use one such as http://127.0.0.1:8025/, or \"\" for Resend's API", cfg.BaseURL)
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/" // resend-go resolves "emails" against it
		}
		client.BaseURL = u
	}
	return &Notifier{
		client:    client,
		apiKey:    key,
		from:      cfg.From,
		replyTo:   cfg.ReplyTo,
		recipient: cfg.Recipient,
		emails:    emails,
	}, nil
}

// Notify implements Notifier: it sends n's email to the user.
func (r *Notifier) Notify(ctx context.Context, n freemium.Notification) error {
	_, err := r.Send(ctx, n)
	return err
}

// Send is Notify, and returns the ID Resend gave the email, for a caller
// that records it. A repeated Notification.ID returns the first send's ID.
func (r *Notifier) Send(ctx context.Context, n freemium.Notification) (messageID string, err error) {
	if err := n.Validate(); err != nil {
		return "", err
	}
	addr, name, err := r.recipient(ctx, n.UserID)
	if err != nil {
		return "", fmt.Errorf("freemium: notify: the user's recipient: %w", err)
	}
	if addr == "" {
		return "", &freemium.NotifyError{Permanent: true, Err: freemium.ErrNoRecipient}
	}
	if a, err := mail.ParseAddress(addr); err != nil || a.Address != addr || a.Name != "" {
		// Neither the address nor the parser's message, which may quote it.
		return "", &freemium.NotifyError{Permanent: true, Err: errors.New("the user's address is not a valid email address")}
	}
	to := addr
	if name != "" {
		to = (&mail.Address{Name: name, Address: addr}).String()
	}
	subject, html, text, err := r.emails.render(n, name)
	if err != nil {
		return "", &freemium.NotifyError{Permanent: true, Err: fmt.Errorf("email %s: %w", n.Kind, err)}
	}
	req := &resend.SendEmailRequest{
		From:    r.from,
		To:      []string{to},
		ReplyTo: r.replyTo,
		Subject: subject,
		Html:    html,
		Text:    text,
	}
	x := &exchange{}
	sent, err := r.client.Emails.SendWithOptions(context.WithValue(ctx, exchangeKey{}, x), req,
		&resend.SendEmailOptions{IdempotencyKey: n.ID}) // never nil: resend-go dereferences it
	if err != nil {
		return "", r.classify(x, err, addr)
	}
	return sent.Id, nil
}

// classify turns a failed send into a *NotifyError from the status the
// transport observed: resend-go's own errors carry none but for a 429.
func (r *Notifier) classify(x *exchange, err error, addr string) error {
	switch {
	case x.status == 0: // no response: a network failure, a timeout, a canceled ctx
		return &freemium.NotifyError{Err: fmt.Errorf("resend: %w", err)}
	case x.status >= 200 && x.status < 300: // sent, and the reply was cut short: the same key makes a retry safe
		return &freemium.NotifyError{Status: x.status, Err: fmt.Errorf("resend: reading the reply: %w", err)}
	}
	// Resend's error body, not resend-go's error, whose message may quote
	// the request: the address is taken out of the message either way.
	var body struct{ Name, Message string }
	if json.Unmarshal(x.body, &body) != nil || body.Message == "" {
		body.Message = http.StatusText(x.status)
	}
	msg := "resend: "
	if body.Name != "" {
		msg += body.Name + ": "
	}
	msg += redact(body.Message, addr, r.apiKey)
	ne := &freemium.NotifyError{Status: x.status, Err: errors.New(msg)}
	switch {
	case x.status == http.StatusTooManyRequests:
		ne.RetryAfter = x.retryAfter
	case x.status >= 500, x.status == http.StatusRequestTimeout:
	case x.status == http.StatusConflict && body.Name == "concurrent_idempotent_requests":
		// The first request with this key is still in progress.
	default: // a validation error, a bad key, an unverified domain: the same request fails again
		ne.Permanent = true
	}
	return ne
}

// redact takes secrets out of s, whatever their case.
func redact(s string, secrets ...string) string {
	const maxLen = 300
	for _, secret := range secrets {
		if secret != "" {
			s = regexp.MustCompile("(?i)"+regexp.QuoteMeta(secret)).ReplaceAllLiteralString(s, "[redacted]")
		}
	}
	if len(s) > maxLen {
		s = strings.ToValidUTF8(s[:maxLen], "") + "..."
	}
	return s
}

// exchangeKey is the context key of a send's *exchange.
type exchangeKey struct{}

// exchange is what the transport observed of a send's response.
type exchange struct {
	status     int
	retryAfter time.Duration
	body       []byte // of an error response, at most maxErrorBody
}

const maxErrorBody = 64 << 10

// observingTransport records the response of requests whose context has an
// *exchange, and keeps connections reusable.
type observingTransport struct {
	base http.RoundTripper
}

func (t observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	x, _ := req.Context().Value(exchangeKey{}).(*exchange)
	if x == nil {
		return resp, nil
	}
	x.status = resp.StatusCode
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// resend-go closes the body once it has decoded the JSON; what is
		// left unread would cost the connection.
		resp.Body = drainOnClose{resp.Body}
		return resp, nil
	}
	x.retryAfter = retryAfter(resp.Header)
	x.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(x.body))
	return resp, nil
}

// drainOnClose reads a little of what is left of a body before closing it,
// so that the connection goes back to the pool.
type drainOnClose struct{ io.ReadCloser }

func (b drainOnClose) Close() error {
	_, _ = io.CopyN(io.Discard, b.ReadCloser, 4<<10)
	return b.ReadCloser.Close()
}

// retryAfter reads Retry-After, in seconds or as an HTTP date (taken
// relative to the response's Date), or else Resend's ratelimit-reset.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		v = h.Get("Ratelimit-Reset")
	}
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 && s < 1e9 {
		return time.Duration(s * float64(time.Second))
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	now, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return 0
	}
	return max(0, at.Sub(now))
}
