package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

// TestDemoInABrowser clicks through the demo page in headless Chromium:
// a new user's free report shown available, the free report, the block
// and its upgrade prompt, the upgrade, the funnel's figures, the 80%
// warning on the response that crosses it, and the estimate that no
// longer fits; then another user blocked after the free report, who buys
// a pack of tokens and generates the next report on it.
// It saves a screenshot of each state in $FREEMIUM_TEST_OUTPUT (scripts/test.sh
// sets it), or in a temporary folder.
func TestDemoInABrowser(t *testing.T) {
	browser := chromiumPath()
	if browser == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium found, and CI=true: scripts/test.sh installs Debian's chromium")
		}
		t.Skip("no Chromium found: skipping the browser test (scripts/test.sh installs Debian's chromium)")
	}
	out := os.Getenv("FREEMIUM_TEST_OUTPUT")
	if out == "" {
		out = t.TempDir()
	}
	out = filepath.Join(out, "demo")
	require.NoError(t, os.MkdirAll(out, 0o755))

	// Delivery runs in the background, as with go run; the notifier tells
	// the test what it sent.
	notifier := &signalingNotifier{Notifier: freemiumtest.NewNotifier(), sent: make(chan freemium.Notification, 16)}
	a, err := newApp(options{Store: freemium.NewMemoryStore(), Subscriptions: freemiumtest.NewSubscriptions(), PriceID: demoPriceID,
		TopUpPriceID: demoTopUpPriceID, Notifier: notifier,
		BaseURL: "http://reports.example"}) // the emails' link; the page is served below
	require.NoError(t, err)
	require.NoError(t, a.gate.Start(context.Background()))
	defer func() { require.NoError(t, a.gate.Stop(context.Background())) }()
	srv := httptest.NewServer(a.routes())
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:0:0],
		chromedp.ExecPath(browser),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// The first action starts the browser, on a context without a deadline
	// (a deadline there would stop the browser); the rest are bounded.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")))
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			png, err := chromedp.FullScreenshot(100)(ctx, tg) // quality 100 is PNG; lower is JPEG
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(out, name+".png"), png, 0o644)
		}
	}
	// textIs waits until the element's text contains want.
	textIs := func(id, want string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).innerText.includes(%q)`, id, want),
			chromedp.WithPollingInterval(20*time.Millisecond))
	}
	generate := chromedp.Click(chromedp.ID("generate"))

	require.NoError(t, chromedp.Do(ctx,
		textIs("figures", "Your free report is available."),
		shot("1-new-user"),

		generate,
		textIs("result", "Quarterly summary for alice"),
		textIs("figures", "Your free report has been used."),
		shot("2-free-report"),

		generate,
		chromedp.WaitVisible(chromedp.ID("blocked")),
		textIs("blocked-message", freemium.DefaultMessages.SubscriptionRequired),
		textIs("limit-hit", "1"),
		shot("3-blocked"),
	))

	// The block sent an upgrade prompt, and the page's funnel counts it
	// before the user upgrades.
	select {
	case n := <-notifier.sent:
		require.Equal(t, freemium.UpgradePrompt, n.Kind)
		require.Equal(t, "alice", n.UserID)
	case <-ctx.Done():
		t.Fatal("no upgrade prompt was sent after the block")
	}
	require.NoError(t, chromedp.Do(ctx,
		textIs("prompted", "1"),
		textIs("converted", "0"),

		chromedp.Click(chromedp.ID("upgrade")),
		textIs("plan", "Pro plan"),
		generate,
		textIs("figures", "1,750 of 20,000 tokens used"),
		shot("4-upgraded"),

		textIs("limit-hit", "1"),
		textIs("prompted", "1"),
		textIs("converted", "1"),
		textIs("conversion-rate", "100%"),
		chromedp.ScrollIntoView(chromedp.ID("funnel")),
		shot("5-funnel"),
	))

	// Pro allows 20,000 tokens: 2,000 reserved and 1,750 spent a report.
	for i := int64(2); i <= 10; i++ {
		require.NoError(t, chromedp.Do(ctx, generate, textIs("figures", thousands(i*1750)+" of 20,000")))
	}
	require.NoError(t, chromedp.Do(ctx,
		textIs("result", "88% of this period's tokens used"), // the response that crossed 80% says so
		chromedp.WaitVisible(chromedp.ID("warning")), shot("6-warning")))
	warning, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("warning")))
	require.NoError(t, err)
	require.True(t, strings.Contains(warning, "88%"), "warning %q", warning)
	require.NoError(t, chromedp.Do(ctx,
		generate, // the 11th fits: 17,500 + 2,000 <= 20,000
		textIs("figures", "19,250 of 20,000"),
		generate, // the 12th does not: 750 tokens are left, and it needs about 2,000
		chromedp.WaitVisible(chromedp.ID("blocked")),
		textIs("blocked-message", "This report needs about 2,000 tokens, more than the 750 left this period."),
		shot("7-limit-reached"),
	))
	upgradeShown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!document.getElementById("upgrade").hidden`))
	require.NoError(t, err)
	require.False(t, upgradeShown, "a Pro user is not offered the plan they have")

	// Block, top-up, report: bob's free report, the block, the pack bought
	// from the blocked message, and the next report paid from it.
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](
		`(() => { const u = document.getElementById("user"); u.value = "bob"; u.dispatchEvent(new Event("change")); return true })()`))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx,
		textIs("figures", "Your free report is available."),
		generate,
		textIs("result", "Quarterly summary for bob"),
		generate,
		chromedp.WaitVisible(chromedp.ID("blocked")),
		textIs("blocked-message", freemium.DefaultMessages.SubscriptionRequired+" Or buy 10,000 more tokens to go on now."),
		chromedp.WaitVisible(chromedp.ID("topup")),
		textIs("topup", "Buy 10,000 tokens"),
		shot("8-blocked-top-up-offered"),

		chromedp.Click(chromedp.ID("topup")),
		textIs("credits", "10,000 tokens of credits left"),
		textIs("top-ups", "1"),
		generate,
		textIs("result", "Quarterly summary for bob"),
		textIs("credits", "8,250 tokens of credits left"),
		shot("9-report-on-the-pack"),
	))
	blocked, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!document.getElementById("blocked").hidden`))
	require.NoError(t, err)
	require.False(t, blocked, "the report after the top-up is served")
	t.Logf("screenshots in %s", out)
}

// signalingNotifier records what it sends, and tells the test on sent.
type signalingNotifier struct {
	*freemiumtest.Notifier
	sent chan freemium.Notification
}

func (n *signalingNotifier) Notify(ctx context.Context, note freemium.Notification) error {
	if err := n.Notifier.Notify(ctx, note); err != nil {
		return err
	}
	select {
	case n.sent <- note:
	default: // nobody is waiting for this one
	}
	return nil
}

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// thousands formats n as the page does (en-US grouping).
func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
