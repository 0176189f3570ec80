package resendnotify

import (
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/freemiumkit/freemium"
)

// The default emails: for each kind of notification, templates/KIND.html
// (html/template, in the frame of templates/layout.html) and
// templates/KIND.txt (text/template), and its subject line. They say that
// a limit is reached only when EmailData.Reached is set.
//
//go:embed templates/*.html templates/*.txt
var templates embed.FS

// defaultSubjects are the default subject lines by kind, text/template
// sources.
var defaultSubjects = map[freemium.NotificationKind]string{
	freemium.UsageWarning:  "You've used {{.Percent}}% of your {{.Usage.Plan}} allowance",
	freemium.UpgradePrompt: "{{if .Reached}}You've reached the free plan's limit: upgrade to continue{{else}}You've used {{.Percent}}% of the free plan: upgrade to continue{{end}}",
	freemium.LimitReached:  "{{if .Reached}}You've reached the limit of your {{.Usage.Plan}} plan{{else}}You've used {{.Percent}}% of your {{.Usage.Plan}} plan{{end}}",
}

// EmailData is what the templates of notification emails are executed with:
// the Notification, the recipient's name, and the usage in words.
type EmailData struct {
	freemium.Notification // .Kind, .UserID, .Usage, .UpgradeURL, .CreatedAt, .ID

	Name    string // the recipient's name, "" when unknown
	Used    string // Usage.Used with thousands separators, such as "8,500"
	Limit   string // Usage.Limit likewise, or "unlimited"
	Percent string // Usage.Percentage rounded down, such as "85"
	Bar     int    // Usage.Percentage rounded down into [0, 100], for a progress bar's width
	// Reached is set when Usage.Used has reached Usage.Limit (a limit of 0
	// always is); never for Unlimited. The default templates say "reached"
	// only when it is set.
	Reached bool
	// Resets is when the allowance resets: Usage.PeriodEnd in UTC, such as
	// "December 1, 2026", or "never" for a period that never ends (Lifetime).
	Resets string
	// Credits is Usage.Credits with thousands separators, "" for none.
	Credits string
	// TopUp is the tokens of the pack the user may buy
	// (Notification.TopUp) with thousands separators, "" for none.
	TopUp string
}

func newEmailData(n freemium.Notification, name string) EmailData {
	d := EmailData{
		Notification: n,
		Name:         name,
		Used:         groupDigits(n.Usage.Used),
		Limit:        "unlimited",
		Resets:       "never",
	}
	if n.Usage.Limit != freemium.Unlimited {
		d.Limit = groupDigits(n.Usage.Limit)
		d.Reached = n.Usage.Used >= n.Usage.Limit
	}
	pct := math.Floor(n.Usage.Percentage)
	if math.IsNaN(pct) || pct < 0 {
		pct = 0
	}
	d.Percent = strconv.FormatFloat(pct, 'f', 0, 64)
	d.Bar = int(min(pct, 100))
	if !n.Usage.PeriodEnd.IsZero() {
		d.Resets = n.Usage.PeriodEnd.UTC().Format("January 2, 2006")
	}
	if n.Usage.Credits > 0 {
		d.Credits = groupDigits(n.Usage.Credits)
	}
	if n.TopUp.Tokens > 0 {
		d.TopUp = groupDigits(n.TopUp.Tokens)
	}
	return d
}

// groupDigits writes n with commas between groups of three digits.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String()
}

// kinds are the notification kinds, in the order they happen.
var kinds = []freemium.NotificationKind{freemium.UsageWarning, freemium.UpgradePrompt, freemium.LimitReached}

// emailTemplates are the templates of one kind's email.
type emailTemplates struct {
	subject *texttemplate.Template
	html    *htmltemplate.Template
	text    *texttemplate.Template
}

// emails are the templates of every kind's email.
type emails map[freemium.NotificationKind]emailTemplates

// parseEmails parses the host's template sources over the defaults, and
// tries each on sample data, so that a mistake shows when the notifier is
// made rather than when it sends. cfg names the config type in errors.
func parseEmails(cfg string, subjects, html, text map[freemium.NotificationKind]string) (emails, error) {
	for _, f := range []struct {
		name string
		m    map[freemium.NotificationKind]string
	}{{"Subjects", subjects}, {"HTMLTemplates", html}, {"TextTemplates", text}} {
		for k := range f.m {
			if !slices.Contains(kinds, k) {
				return nil, fmt.Errorf("resendnotify: %s.%s has kind %q: use freemium.UsageWarning, UpgradePrompt or LimitReached", cfg, f.name, k)
			}
		}
	}
	e := emails{}
	for _, k := range kinds {
		var t emailTemplates
		var err error
		fail := func(field string, err error) error {
			return fmt.Errorf("resendnotify: %s.%s[%s]: %w: fix the template, or leave the kind out for the default", cfg, field, k, err)
		}
		src := subjects[k]
		if src == "" {
			src = defaultSubjects[k]
		}
		if t.subject, err = texttemplate.New("subject").Parse(src); err != nil {
			return nil, fail("Subjects", err)
		}
		if src := html[k]; src != "" {
			t.html, err = htmltemplate.New(string(k)).Parse(src)
		} else {
			t.html, err = htmltemplate.ParseFS(templates, "templates/"+string(k)+".html", "templates/layout.html")
		}
		if err != nil {
			return nil, fail("HTMLTemplates", err)
		}
		if src := text[k]; src != "" {
			t.text, err = texttemplate.New(string(k)).Parse(src)
		} else {
			t.text, err = texttemplate.ParseFS(templates, "templates/"+string(k)+".txt")
		}
		if err != nil {
			return nil, fail("TextTemplates", err)
		}
		sample := newEmailData(sampleNotification(k), "Sam")
		if err := t.subject.Execute(io.Discard, sample); err != nil {
			return nil, fail("Subjects", err)
		}
		if err := t.html.Execute(io.Discard, sample); err != nil {
			return nil, fail("HTMLTemplates", err)
		}
		if err := t.text.Execute(io.Discard, sample); err != nil {
			return nil, fail("TextTemplates", err)
		}
		e[k] = t
	}
	return e, nil
}

func sampleNotification(k freemium.NotificationKind) freemium.Notification {
	return freemium.Notification{
		ID: "sample", Kind: k, UserID: "user",
		Usage: freemium.Usage{Plan: "pro", Used: 850, Limit: 1000, Remaining: 150, Percentage: 85, Warning: true,
			PeriodStart: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), PeriodEnd: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		UpgradeURL: "https://example.com/upgrade",
		TopUp:      freemium.TopUp{PriceID: "price_pack", Tokens: 10_000},
	}
}

// render executes n's templates for a recipient called name.
func (e emails) render(n freemium.Notification, name string) (subject, html, text string, err error) {
	t := e[n.Kind]
	d := newEmailData(n, name)
	var b strings.Builder
	if err := t.subject.Execute(&b, d); err != nil {
		return "", "", "", fmt.Errorf("subject: %w", err)
	}
	subject = strings.Join(strings.Fields(b.String()), " ") // one line
	b.Reset()
	if err := t.html.Execute(&b, d); err != nil {
		return "", "", "", fmt.Errorf("HTML: %w", err)
	}
	html = b.String()
	b.Reset()
	if err := t.text.Execute(&b, d); err != nil {
		return "", "", "", fmt.Errorf("text: %w", err)
	}
	return subject, html, b.String(), nil
}
