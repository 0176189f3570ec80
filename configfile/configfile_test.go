package configfile_test

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/configfile"
)

func TestLoadFixtures(t *testing.T) {
	tests := []struct {
		file string
		want freemium.Config
	}{
		{"design.yaml", designConfig},
		{"design.json", designConfig},
		{"reports.yaml", freemium.Config{
			Free: freemium.Plan{Name: "free", FirstReportFree: true, Period: freemium.Lifetime},
			Plans: []freemium.Plan{
				{Name: "pro", PriceIDs: []string{"price_pro_monthly", "price_pro_yearly"}, Limit: 200_000, Period: freemium.BillingCycle},
				{Name: "team", Limit: freemium.Unlimited, SoftLimit: true, Period: freemium.BillingCycle},
			},
			WarnAt:     0.9,
			UpgradeURL: "https://example.com/pricing",
			Messages:   freemium.Messages{SubscriptionRequired: "Your free report has been used ({used} tokens). Subscribe for more."},
			Gated:      []string{"POST /api/reports"},
		}},
		{"minimal.json", freemium.Config{
			Free:  freemium.Plan{Name: "free", Limit: 5000, Period: freemium.Lifetime},
			Gated: []string{"/api/chat"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			cfg, err := configfile.Load(filepath.Join("testdata", "config", tc.file))
			require.NoError(t, err)
			assert.Equal(t, tc.want, cfg)
			cfg.Store = freemium.NewMemoryStore()
			_, err = freemium.New(cfg)
			assert.NoError(t, err, "New on the loaded Config")
		})
	}
}

// The design's loop, loaded and given a Store, gates its trigger's
// endpoint through a middleware without Gated, and nothing else; a blocked
// free user reads the file's message.
func TestConfigDesignGatesItsTrigger(t *testing.T) {
	cfg, err := configfile.Load("testdata/config/design.yaml")
	require.NoError(t, err)
	cfg.Store, cfg.Logger = freemium.NewMemoryStore(), slog.New(slog.DiscardHandler)
	g, err := freemium.New(cfg)
	require.NoError(t, err)
	h := g.Middleware(freemium.MiddlewareOptions{UserID: headerUser, Estimate: func(*http.Request) int64 { return 50 }})(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))

	for _, tc := range []struct {
		method, path string
		want         int
		gated        bool
	}{
		{http.MethodPost, "/api/features/x", 200, true},
		{http.MethodGet, "/api/other", 200, false},
		{http.MethodPost, "/api/features/y", 200, true}, // 50 + 50: the limit is used
		{http.MethodPost, "/api/features/z", 402, true},
		{http.MethodGet, "/api/other", 200, false},
		{http.MethodGet, "/api/features/x", 200, false},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Header.Set("X-User-ID", "u1")
		h.ServeHTTP(rec, req)
		assert.Equal(t, tc.want, rec.Code, "%s %s", tc.method, tc.path)
		assert.Equal(t, tc.gated, rec.Header().Get("X-Usage-Plan") != "", "%s %s gated", tc.method, tc.path)
		if rec.Code == 402 {
			assert.Contains(t, rec.Body.String(), "You've reached your free tier limit. Upgrade to continue.")
		}
	}
}

// loop is a valid config with one line replaced (old -> new), for error
// cases that differ from it in one place.
func loop(t *testing.T, replace ...string) string {
	t.Helper()
	base := `type: freemium
steps:
  - trigger:
      type: api
      endpoint: /api/features/*
      method: POST
    condition:
      type: usage
      limit:
        free: 100
        paid: unlimited
      period: 30d
    action:
      type: block
      message: Upgrade to continue.
      upgradePrompt:
        type: email
        provider: resend
        template: upgrade_prompt
`
	for i := 0; i+1 < len(replace); i += 2 {
		require.Contains(t, base, replace[i], "the case's old text")
		base = strings.Replace(base, replace[i], replace[i+1], 1)
	}
	return base
}

func TestParseErrors(t *testing.T) {
	const prefix = "freemium: config: "
	tests := []struct {
		name string
		data string
		want string // the error, after prefix
	}{
		{"the base loop is valid", loop(t), ""},
		{"empty", "", `empty: give a freemium loop in YAML or JSON`},
		{"comments only", "# nothing\n", `empty: give a freemium loop in YAML or JSON`},
		{"not a mapping", "- a\n- b\n", `the top level: a list is not a mapping`},
		{"YAML syntax", "type: [freemium\n", `yaml: line 1: did not find expected ',' or ']'`},
		{"JSON syntax", "{\n  \"type\": \"freemium\",\n  \"steps\": [}\n}", `JSON syntax error at line 3, column 13: invalid character '}' looking for beginning of value`},
		{"two documents", loop(t) + "---\ntype: freemium\n", `more than one YAML document: give one`},
		{"wrong type", loop(t, "type: freemium", "type: loop"), `type: "loop" is not supported: use freemium`},
		{"no type", loop(t, "type: freemium", "name: x"), `type: missing: use freemium`},
		{"unknown top-level field", loop(t, "type: freemium", "type: freemium\nstep: []"), `step: unknown field (use type, name, description, opinion, steps, plans, topUps, recovery)`},
		{"unknown nested field", loop(t, "method: POST", "methdo: POST"), `steps[0].trigger.methdo: unknown field (use type, endpoint, method)`},
		{"field twice", loop(t, "period: 30d", "period: 30d\n      period: 1mo"), `steps[0].condition.period: given twice`},
		{"JSON field twice", `{"type": "freemium", "type": "freemium"}`, `type: given twice`},
		{"no steps", "type: freemium\n", `steps: missing: give one step with a trigger, a condition and an action`},
		{"steps not a list", "type: freemium\nsteps: {}\n", `steps: a mapping is not a list of steps`},
		{"two steps", "type: freemium\nsteps: [{}, {}]\n", `steps: 2 steps: give exactly one (a Config counts one allowance; load a config per Gate)`},
		{"no action", loop(t, "    action:", "    actio:"), `steps[0].actio: unknown field (use trigger, condition, action)`},
		{"trigger type", loop(t, "type: api", "type: cron"), `steps[0].trigger.type: "cron" is not supported: use api`},
		{"no endpoint", loop(t, "endpoint: /api/features/*\n      method", "method"), `steps[0].trigger.endpoint: missing: give a path such as /api/features/*`},
		{"no action", `{"type": "freemium", "steps": [{"trigger": {"type": "api", "endpoint": "/a"}, "condition": {}}]}`, `steps[0].action: missing`},
		{"null reads as missing", `{"type": "freemium", "steps": [{"trigger": {"type": "api", "endpoint": "/a"}, "condition": {"type": "usage", "limit": {"free": 1}, "period": null}, "action": {"type": "block"}}]}`,
			`steps[0].condition.period: missing (use 30d, 1mo, billing or lifetime)`},
		{"JSON limit a float", `{"type": "freemium", "steps": [{"trigger": {"type": "api", "endpoint": "/a"}, "condition": {"type": "usage", "limit": {"free": 1e3}, "period": "1mo"}, "action": {"type": "block"}}]}`,
			`steps[0].condition.limit.free: 1e3 is not a limit (use a whole number of tokens, or unlimited)`},
		{"YAML flow mapping that is not JSON", "{type: freemium, steps: 3}", `steps: 3 is not a list of steps`},
		{"JSON top level a list", `[1, 2]`, `the top level: a list is not a mapping`},
		{"endpoint not a path", loop(t, "endpoint: /api/features/*", "endpoint: api/features"), `steps[0].trigger.endpoint: "api/features" is not an endpoint: use a path starting with /, such as /api/features/*`},
		{"endpoint with a star inside", loop(t, "/api/features/*", "/api/*/x"), `steps[0].trigger.endpoint: "/api/*/x" is not an endpoint: only a trailing /* is a wildcard`},
		{"endpoint with a space", loop(t, "/api/features/*", `"/api/a b"`), `steps[0].trigger.endpoint: "/api/a b" is not an endpoint: a path has no spaces or control characters`},
		{"endpoint a bad ServeMux pattern", loop(t, "/api/features/*", `"/api/{x"`), `steps[0].trigger.endpoint: "/api/{x" is not an endpoint: parsing "POST /api/{x": at offset 10: bad wildcard segment (must end with '}')`},
		{"endpoint not a string", loop(t, "/api/features/*", "[/a]"), `steps[0].trigger.endpoint: a list is not a string (quote it)`},
		{"method in lower case", loop(t, "method: POST", "method: post"), `steps[0].trigger.method: "post" is not a method (use upper case, such as POST)`},
		{"condition type", loop(t, "type: usage", "type: time"), `steps[0].condition.type: "time" is not supported: use usage`},
		{"period unknown unit", loop(t, "period: 30d", "period: 30x"), `steps[0].condition.period: "30x" is not a period (use 30d, 1mo, billing or lifetime)`},
		{"period zero", loop(t, "period: 30d", "period: 0d"), `steps[0].condition.period: "0d" is not a period (use 30d, 1mo, billing or lifetime)`},
		{"period a number", loop(t, "period: 30d", "period: 30"), `steps[0].condition.period: 30 is not a period (use 30d, 1mo, billing or lifetime)`},
		{"period 2mo", loop(t, "period: 30d", "period: 2mo"), `steps[0].condition.period: "2mo" is not a period: only 1mo (the calendar month) is supported; use billing for the subscription's own period, or days such as 60d`},
		{"period overflows", loop(t, "period: 30d", "period: 999999999999d"), `steps[0].condition.period: "999999999999d" is too long: use at most 106751d`},
		{"no period", loop(t, "period: 30d", "warnAt: 0.5"), `steps[0].condition.period: missing (use 30d, 1mo, billing or lifetime)`},
		{"limit negative", loop(t, "free: 100", "free: -1"), `steps[0].condition.limit.free: -1 is not a limit (use a whole number of tokens, or unlimited)`},
		{"limit a fraction", loop(t, "free: 100", "free: 1.5"), `steps[0].condition.limit.free: 1.5 is not a limit (use a whole number of tokens, or unlimited)`},
		{"limit Infinity", loop(t, "paid: unlimited", "paid: .inf"), `steps[0].condition.limit.paid: .inf is not a limit (use a whole number of tokens, or unlimited)`},
		{"limit a word", loop(t, "paid: unlimited", "paid: infinite"), `steps[0].condition.limit.paid: "infinite" is not a limit (use a whole number of tokens, or unlimited)`},
		{"limit too large for int64", loop(t, "free: 100", "free: 99999999999999999999"), `steps[0].condition.limit.free: 99999999999999999999 is not a limit (use a whole number of tokens, or unlimited)`},
		{"limit above the Gate's maximum", loop(t, "free: 100", "free: 1000000000000000001"), `steps[0].condition.limit.free is 1000000000000000001: use at most 1000000000000000000, or Unlimited`},
		{"limit for an unknown plan", loop(t, "paid: unlimited", "pro: unlimited"), `steps[0].condition.limit: no plan "pro": add it under plans, or use free or paid`},
		{"no limit for free", loop(t, "free: 100\n", ""), `steps[0].condition.limit: no limit for plan "free": add free: 0 to allow free users nothing (beyond a first report when plans.free.firstReportFree)`},
		{"no limit for a declared plan", loop(t) + "plans:\n  pro:\n    priceIds: [price_1]\n", `steps[0].condition.limit: no limit for plan "pro", which plans.pro declares`},
		{"warnAt above 1", loop(t, "period: 30d", "period: 30d\n      warnAt: 1.5"), `steps[0].condition.warnAt is 1.5: use a fraction in (0, 1], such as 0.8`},
		{"warnAt a percentage", loop(t, "period: 30d", "period: 30d\n      warnAt: 80%"), `steps[0].condition.warnAt: "80%" is not a fraction (use one in (0, 1], such as 0.8)`},
		{"action type", loop(t, "type: block", "type: notify"), `steps[0].action.type: "notify" is not supported: use block`},
		{"message not a string", loop(t, "message: Upgrade to continue.", "message: {text: x}"), `steps[0].action.message: a mapping is not a string (quote it)`},
		{"prompt type", loop(t, "type: email", "type: sms"), `steps[0].action.upgradePrompt.type: "sms" is not supported: use email`},
		{"prompt provider", loop(t, "provider: resend", "provider: sendgrid"), `steps[0].action.upgradePrompt.provider: "sendgrid" is not supported: use resend`},
		{"prompt without template", loop(t, "template: upgrade_prompt", "template:"), `steps[0].action.upgradePrompt.template: missing: name the email's template, such as upgrade_prompt`},
		{"prompt template with a space", loop(t, "template: upgrade_prompt", "template: upgrade prompt"), `steps[0].action.upgradePrompt.template: "upgrade prompt" is not a template name (use one without spaces, such as upgrade_prompt)`},
		{"recovery retries", loop(t) + "recovery:\n  retries: 3\n", `recovery.retries: 3 is not supported: use 0 (a blocked request is answered at once, never retried)`},
		{"plans not a mapping", loop(t) + "plans: [free]\n", `plans: a list is not a mapping`},
		{"plan unknown field", loop(t) + "plans:\n  paid:\n    priceId: price_1\n", `plans.paid.priceId: unknown field (use priceIds, firstReportFree, softLimit, period)`},
		{"plan period", loop(t) + "plans:\n  paid:\n    period: 30x\n", `plans.paid.period: "30x" is not a period (use 30d, 1mo, billing or lifetime)`},
		{"plan name with a space", loop(t) + "plans:\n  pro plan: {priceIds: [p]}\n", `steps[0].condition.limit: no limit for plan "pro plan", which plans["pro plan"] declares`},
		{"plan name empty", loop(t) + "plans:\n  \"\": {}\n", `plans: "" is not a plan name (use up to 256 bytes of text, such as pro)`},
		{"plan name with a newline", loop(t) + "plans:\n  \"a\\nb\": {}\n", `plans: "a\nb" is not a plan name (use up to 256 bytes of text, such as pro)`},
		{"plan key a number", loop(t) + "plans:\n  2024: {}\n", `plans: key 2024 is not a name (quote it)`},
		{"priceIds not a list", loop(t) + "plans:\n  paid:\n    priceIds: price_1\n", `plans.paid.priceIds: "price_1" is not a list of price IDs`},
		{"price ID empty", loop(t) + "plans:\n  paid:\n    priceIds: [\"\"]\n", `plans.paid.priceIds[0] is empty: remove it or give the price ID`},
		{"price ID in two plans", loop(t, "paid: unlimited", "paid: unlimited\n        pro: 5") + "plans:\n  paid: {priceIds: [p1]}\n  pro: {priceIds: [p1]}\n", `plans.pro.priceIds[0] "p1" is also in plans.paid: a price places a subscriber on one plan`},
		{"two plans take any subscription", loop(t, "paid: unlimited", "paid: unlimited\n        pro: 5") + "plans:\n  pro: {}\n", `plans.pro and plans.paid both have no priceIds: at most one plan may take any subscription`},
		{"free plan with a price", loop(t) + "plans:\n  free: {priceIds: [p1]}\n", `plans.free.priceIds is set: the Free plan has no price; move the IDs to a plan in plans`},
		{"firstReportFree not a bool", loop(t) + "plans:\n  free: {firstReportFree: \"yes\"}\n", `plans.free.firstReportFree: "yes" is not true or false`},
		{"an alias is read as its anchor", loop(t, "free: 100", "free: &n 100\n        x: *n"), `steps[0].condition.limit: no plan "x": add it under plans, or use free or paid`},
		{"top-ups not a list", loop(t) + "topUps: {priceId: p}\n", `topUps: a mapping is not a list of top-ups`},
		{"top-up without tokens", loop(t) + "topUps:\n  - priceId: price_pack\n", `topUps[0].tokens: missing: give the tokens one purchase grants, such as 10_000`},
		{"top-up of 0 tokens", loop(t) + "topUps:\n  - {priceId: price_pack, tokens: 0}\n", `topUps[0].tokens: 0 is not a token count (use a whole number above 0, such as 10_000)`},
		{"top-up without a price", loop(t) + "topUps:\n  - tokens: 10\n", `topUps[0].priceId: missing: give the pack's one-time price ID`},
		{"top-up validity", loop(t) + "topUps:\n  - {priceId: p, tokens: 10, validity: 1mo}\n", `topUps[0].validity: "1mo" is not a validity (use 365d, 720h, 30m or 60s)`},
		{"top-up unknown field", loop(t) + "topUps:\n  - {priceId: p, tokens: 10, expires: 1d}\n", `topUps[0].expires: unknown field (use priceId, tokens, validity)`},
		{"top-up of a plan's price", loop(t) + "plans:\n  paid: {priceIds: [p1]}\ntopUps:\n  - {priceId: p1, tokens: 10}\n", `topUps[0].priceId "p1" is also in plans.paid: a price is a plan's or a top-up's`},
		{"a merge key is not supported", loop(t, "    action:", "    <<: {}\n    action:"), `steps[0]: merge keys (<<) are not supported: write the fields out`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := configfile.Parse([]byte(tc.data))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, prefix+tc.want, err.Error())
		})
	}
}

// Plans keep the order of plans, the implicit paid plan last, whatever the
// order of the limits.
func TestParsePlanOrder(t *testing.T) {
	data := loop(t, "paid: unlimited", "paid: unlimited\n        team: 20\n        pro: 10") +
		"plans:\n  pro: {priceIds: [price_pro]}\n  team: {priceIds: [price_team]}\n"
	cfg, err := configfile.Parse([]byte(data))
	require.NoError(t, err)
	every30d := freemium.Every(30 * 24 * time.Hour)
	assert.Equal(t, []freemium.Plan{
		{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 10, Period: every30d},
		{Name: "team", PriceIDs: []string{"price_team"}, Limit: 20, Period: every30d},
		{Name: "paid", Limit: freemium.Unlimited, Period: every30d},
	}, cfg.Plans)
}

// topUps are Config.TopUps, in order.
func TestParseTopUps(t *testing.T) {
	data := loop(t) + "topUps:\n  - {priceId: price_10k, tokens: 10_000, validity: 365d}\n  - priceId: price_50k\n    tokens: 50000\n"
	cfg, err := configfile.Parse([]byte(data))
	require.NoError(t, err)
	assert.Equal(t, []freemium.TopUp{
		{PriceID: "price_10k", Tokens: 10_000, Validity: 365 * 24 * time.Hour},
		{PriceID: "price_50k", Tokens: 50_000},
	}, cfg.TopUps)
}

// Load's errors name the file.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json") // YAML, whatever its name says
	require.NoError(t, os.WriteFile(bad, []byte(loop(t, "period: 30d", "period: 30x")), 0o600))

	_, err := configfile.Load(bad)
	require.Error(t, err)
	assert.Equal(t, "freemium: config: "+bad+`: steps[0].condition.period: "30x" is not a period (use 30d, 1mo, billing or lifetime)`, err.Error())

	missing := filepath.Join(dir, "missing.yaml")
	_, err = configfile.Load(missing)
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), missing)
}

// Endpoints translate to ServeMux patterns: a trailing /* is the subtree,
// anything else matches exactly.
func TestParseEndpoints(t *testing.T) {
	tests := []struct {
		endpoint, method string
		want             string
	}{
		{"/api/features/*", "POST", "POST /api/features/"},
		{"/*", "", "/"},
		{"/api/reports", "GET", "GET /api/reports"},
		{"/api/reports/", "POST", "POST /api/reports/{$}"},
		{"/api/users/{id}/reports", "POST", "POST /api/users/{id}/reports"},
		{"/api/{$}", "", "/api/{$}"},
	}
	for _, tc := range tests {
		t.Run(tc.endpoint, func(t *testing.T) {
			method := ""
			if tc.method != "" {
				method = "\n      method: " + tc.method
			}
			cfg, err := configfile.Parse([]byte(loop(t, "endpoint: /api/features/*\n      method: POST", "endpoint: \""+tc.endpoint+"\""+method)))
			require.NoError(t, err)
			assert.Equal(t, []string{tc.want}, cfg.Gated)
		})
	}
}

// Periods, and which Messages field the block message fills.
func TestParsePeriodsAndMessages(t *testing.T) {
	periods := []struct {
		period string
		want   freemium.Period
	}{
		{"30d", freemium.Every(30 * 24 * time.Hour)},
		{"12h", freemium.Every(12 * time.Hour)},
		{"90m", freemium.Every(90 * time.Minute)},
		{"1s", freemium.Every(time.Second)},
		{"1mo", freemium.CalendarMonth},
		{"billing", freemium.BillingCycle},
		{"lifetime", freemium.Lifetime},
	}
	for _, tc := range periods {
		cfg, err := configfile.Parse([]byte(loop(t, "period: 30d", "period: "+tc.period)))
		require.NoError(t, err, tc.period)
		assert.Equal(t, tc.want, cfg.Free.Period, tc.period)
		assert.Equal(t, tc.want, cfg.Plans[0].Period, tc.period)
	}

	messages := []struct {
		name  string
		limit string
		plans string
		want  freemium.Messages
	}{
		{"free limit above 0", "free: 100", "", freemium.Messages{FreeLimitExceeded: "Upgrade to continue."}},
		{"free unlimited", "free: unlimited", "", freemium.Messages{FreeLimitExceeded: "Upgrade to continue."}},
		{"free 0 with a first report", "free: 0", "plans:\n  free: {firstReportFree: true}\n", freemium.Messages{SubscriptionRequired: "Upgrade to continue."}},
		{"free 0 without", "free: 0", "", freemium.Messages{SubscriptionRequiredNoFreeReport: "Upgrade to continue."}},
	}
	for _, tc := range messages {
		cfg, err := configfile.Parse([]byte(loop(t, "free: 100", tc.limit) + tc.plans))
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, cfg.Messages, tc.name)
	}
}

// designConfig is the Config of the design's defineLoop example.
var designConfig = freemium.Config{
	Free:     freemium.Plan{Name: "free", Limit: 100, Period: freemium.Every(30 * 24 * time.Hour)},
	Plans:    []freemium.Plan{{Name: "paid", Limit: freemium.Unlimited, Period: freemium.Every(30 * 24 * time.Hour)}},
	Messages: freemium.Messages{FreeLimitExceeded: "You've reached your free tier limit. Upgrade to continue."},
	Gated:    []string{"POST /api/features/"},
}

// headerUser is the user a request names in its X-User-ID header.
func headerUser(r *http.Request) (string, error) {
	if u := r.Header.Get("X-User-ID"); u != "" {
		return u, nil
	}
	return "", errors.New("no X-User-ID")
}
