package resendnotify_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/internal/resendtest"
	"github.com/freemiumkit/freemium/resendnotify"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden emails in testdata/email")

// sendEmail sends n through a ResendNotifier on a stand-in, and returns the
// email as Resend received it.
func sendEmail(t *testing.T, cfg resendnotify.Config, n freemium.Notification) resendtest.Body {
	t.Helper()
	s := resendtest.New(t)
	cfg.BaseURL = s.URL()
	require.NoError(t, resendtest.Notifier(t, cfg).Notify(context.Background(), n))
	require.Len(t, s.Delivered(), 1)
	return s.Delivered()[0].Body
}

// golden compares got with testdata/email/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "email", name)
	if *updateGolden {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -run TestEmailGolden -update to write it")
	assert.Equal(t, string(want), got, "%s differs: if the change is meant, run go test -run TestEmailGolden -update", path)
}

func TestEmailGolden(t *testing.T) {
	periodStart := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	periodEnd := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		n       freemium.Notification
		subject string
	}{
		{"usage_warning", freemium.Notification{Kind: freemium.UsageWarning, Usage: freemium.Usage{
			Plan: "pro", Used: 8_500, Limit: 10_000, Remaining: 1_500, Percentage: 85, Warning: true,
			PeriodStart: periodStart, PeriodEnd: periodEnd,
		}}, "You've used 85% of your pro allowance"},
		{"upgrade_prompt", freemium.Notification{Kind: freemium.UpgradePrompt, Usage: freemium.Usage{
			Plan: "free", Used: 1_000, Limit: 1_000, Percentage: 100, Warning: true, // Lifetime: no period
		}}, "You've reached the free plan's limit: upgrade to continue"},
		{"upgrade_prompt_first_report", freemium.Notification{Kind: freemium.UpgradePrompt, Usage: freemium.Usage{
			Plan: "free", Used: 6_000, Limit: 0, Percentage: 100, Warning: true, FirstReportUsed: true,
		}}, "You've reached the free plan's limit: upgrade to continue"},
		{"usage_warning_credits", freemium.Notification{Kind: freemium.UsageWarning, Usage: freemium.Usage{
			Plan: "pro", Used: 8_500, Limit: 10_000, Remaining: 6_500, Percentage: 85, Warning: true, Credits: 5_000,
			PeriodStart: periodStart, PeriodEnd: periodEnd,
		}}, "You've used 85% of your pro allowance"},
		{"upgrade_prompt_top_up", freemium.Notification{Kind: freemium.UpgradePrompt, Usage: freemium.Usage{
			Plan: "free", Used: 6_000, Limit: 0, Percentage: 100, Warning: true, FirstReportUsed: true,
		}, TopUp: freemium.TopUp{PriceID: "price_pack", Tokens: 10_000}}, "You've reached the free plan's limit: upgrade to continue"},
		{"limit_reached", freemium.Notification{Kind: freemium.LimitReached, Usage: freemium.Usage{
			Plan: "pro", Used: 1_234_567, Limit: 1_000_000, Percentage: 123.4567, Warning: true, Overage: true,
			PeriodStart: periodStart, PeriodEnd: periodEnd,
		}}, "You've reached the limit of your pro plan"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.n
			n.ID, n.UserID, n.CreatedAt = "ntf_"+tc.name, "u1", resendtest.T0
			n.UpgradeURL = "https://app.example/upgrade?plan=pro&src=email"
			email := sendEmail(t, resendtest.Config(resendtest.New(t)), n)
			assert.Equal(t, tc.subject, email.Subject)
			golden(t, tc.name+".html", email.HTML)
			golden(t, tc.name+".txt", email.Text)
		})
	}
}

func TestEmailWithoutUpgradeURL(t *testing.T) {
	n := resendtest.UpgradePrompt("ntf_1")
	n.UpgradeURL = ""
	email := sendEmail(t, resendtest.Config(resendtest.New(t)), n)
	assert.NotContains(t, email.HTML, "Upgrade now", "no button to nowhere")
	assert.NotContains(t, email.HTML, "href")
	assert.NotContains(t, email.Text, "http")
}

func TestEmailEscapesHTML(t *testing.T) {
	cfg := resendtest.Config(resendtest.New(t))
	const name = `<script>alert(1)</script>`
	cfg.Recipient = resendtest.Recipients(map[string][2]string{"u1": {resendtest.Email, name}})
	for _, tc := range []struct {
		url, href string
	}{
		{"javascript:alert(1)", `href="#ZgotmplZ"`},
		{"JaVaScRiPt:alert(document.cookie)", `href="#ZgotmplZ"`},
		{`https://app.example/up?a="><img src=x onerror=alert(1)>`, `href="https://app.example/up?a=%22%3e%3cimg%20src=x%20onerror=alert%281%29%3e"`},
		{`https://app.example/up?q='x' onmouseover='alert(1)`, `href="https://app.example/up?q=%27x%27%20onmouseover=%27alert%281%29"`},
	} {
		n := resendtest.UpgradePrompt("ntf_1")
		n.UpgradeURL = tc.url
		n.Usage.Plan = `<b>pro</b>`
		email := sendEmail(t, cfg, n)
		html := email.HTML
		assert.NotContains(t, html, "<script", tc.url)
		assert.Contains(t, html, "Hi &lt;script&gt;alert(1)&lt;/script&gt;,", tc.url)
		assert.NotContains(t, html, "<b>pro", tc.url)
		assert.NotContains(t, html, "<img", tc.url)
		assert.NotContains(t, strings.ToLower(html), `href="javascript:`, tc.url)
		assert.Contains(t, html, tc.href, tc.url)
		assert.Equal(t, []string{`"<script>alert(1)</script>" <` + resendtest.Email + `>`}, email.To,
			"the name is quoted in To, and the stand-in parsed it back")
	}
}

func TestEmailTemplatesReplaceable(t *testing.T) {
	cfg := resendtest.Config(resendtest.New(t))
	cfg.Subjects = map[freemium.NotificationKind]string{freemium.UpgradePrompt: "{{.Name}}:\n{{.Percent}}% used"}
	cfg.HTMLTemplates = map[freemium.NotificationKind]string{freemium.UpgradePrompt: `<a href="{{.UpgradeURL}}">{{.Used}}/{{.Limit}} until {{.Resets}}</a>`}
	cfg.TextTemplates = map[freemium.NotificationKind]string{freemium.UpgradePrompt: "{{.Usage.Plan}} {{.UpgradeURL}}"}
	n := resendtest.UpgradePrompt("ntf_1")
	email := sendEmail(t, cfg, n)
	assert.Equal(t, "Jane Doe: 102% used", email.Subject, "the subject is one line")
	assert.Equal(t, `<a href="https://app.example/upgrade?plan=pro&amp;from=email">10,250/10,000 until December 1, 2026</a>`, email.HTML)
	assert.Equal(t, "free https://app.example/upgrade?plan=pro&from=email", email.Text)

	n.Kind = freemium.LimitReached
	email = sendEmail(t, cfg, n)
	assert.Equal(t, "You've reached the limit of your free plan", email.Subject, "other kinds keep the defaults")
	assert.Contains(t, email.HTML, "Upgrade now")
}

// The default emails say a limit is reached only when it is: a LimitReached
// or UpgradePrompt made below the limit (as the Gate made them when holds
// filled it) says how much is used instead.
func TestEmailNeverClaimsReachedBelowTheLimit(t *testing.T) {
	for _, kind := range []freemium.NotificationKind{freemium.LimitReached, freemium.UpgradePrompt} {
		below := sendEmail(t, resendtest.Config(resendtest.New(t)), freemium.Notification{ID: "n1", Kind: kind, UserID: "u1",
			Usage: freemium.Usage{Plan: "pro", Used: 0, Limit: 1000, Remaining: 0, Reserved: 1000}})
		for part, text := range map[string]string{"subject": below.Subject, "html": below.HTML, "text": below.Text} {
			assert.NotContains(t, strings.ToLower(text), "reached", "%s %s below the limit", kind, part)
			assert.Contains(t, text, "0%", "%s %s says how much is used", kind, part)
		}
		at := sendEmail(t, resendtest.Config(resendtest.New(t)), freemium.Notification{ID: "n2", Kind: kind, UserID: "u1",
			Usage: freemium.Usage{Plan: "pro", Used: 1000, Limit: 1000, Percentage: 100}})
		for part, text := range map[string]string{"subject": at.Subject, "html": at.HTML, "text": at.Text} {
			assert.Contains(t, text, "reached", "%s %s at the limit", kind, part)
		}
	}
}
