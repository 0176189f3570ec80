package configfile_test

import (
	"fmt"
	"log"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/configfile"
)

// A freemium loop from a config file: the file sets the limits, periods,
// message and gated endpoint; code supplies the Store (and, in production,
// the subscription checker and notifier).
func ExampleParse() {
	cfg, err := configfile.Parse([]byte(`
type: freemium
steps:
  - trigger: {type: api, endpoint: /api/features/*, method: POST}
    condition:
      type: usage
      limit: {free: 100, paid: unlimited}
      period: 30d
    action:
      type: block
      message: You've reached your free tier limit. Upgrade to continue.
      upgradePrompt: {type: email, provider: resend, template: upgrade_prompt}
`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("gated:", cfg.Gated)
	fmt.Println("free:", cfg.Free.Limit, "tokens", cfg.Free.Period)
	for _, p := range cfg.Plans {
		fmt.Println(p.Name+": unlimited:", p.Limit == freemium.Unlimited, "any subscription:", len(p.PriceIDs) == 0)
	}

	cfg.Store = freemium.NewMemoryStore()
	if _, err := freemium.New(cfg); err != nil {
		log.Fatal(err)
	}

	_, err = configfile.Parse([]byte(`
type: freemium
steps:
  - trigger: {type: api, endpoint: /api/features/*}
    condition: {type: usage, limit: {free: 100}, period: 30x}
    action: {type: block}
`))
	fmt.Println(err)
	// Output:
	// gated: [POST /api/features/]
	// free: 100 tokens every 720h0m0s
	// paid: unlimited: true any subscription: true
	// freemium: config: steps[0].condition.period: "30x" is not a period (use 30d, 1mo, billing or lifetime)
}

// A file with Stripe prices: one free report per user, then Pro or Team,
// per billing period.
func ExampleLoad() {
	cfg, err := configfile.Load("testdata/config/reports.yaml")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("gated:", cfg.Gated)
	fmt.Println("free:", cfg.Free.Limit, "tokens, first report free:", cfg.Free.FirstReportFree, "period:", cfg.Free.Period)
	for _, p := range cfg.Plans {
		fmt.Println(p.Name+":", p.PriceIDs, "period:", p.Period)
	}
	// Output:
	// gated: [POST /api/reports]
	// free: 0 tokens, first report free: true period: lifetime
	// pro: [price_pro_monthly price_pro_yearly] period: billing cycle
	// team: [] period: billing cycle
}
