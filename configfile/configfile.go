// Package configfile reads a freemium.Config from a file: a freemium loop in
// YAML or JSON, in the shape of the design's defineLoop (see Parse for the
// format). It is the only package of the module that needs a YAML parser.
package configfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/freemiumkit/freemium"
)

// Parse reads a Config from a freemium loop written in YAML or JSON,
// in the shape of the design's defineLoop. Field names are case-sensitive:
//
//	type: freemium                  # required
//	name: reports                   # optional, as are description and opinion: notes for readers
//	steps:                          # exactly one step
//	  - trigger:                    # the requests the middleware gates: Config.Gated
//	      type: api
//	      endpoint: /api/features/* # a path; a trailing /* means the subtree
//	      method: POST              # optional; default any method
//	    condition:
//	      type: usage
//	      limit:                    # tokens per period, for every plan: a whole number or unlimited
//	        free: 100
//	        paid: unlimited
//	      period: 30d               # Nd, Nh, Nm (minutes), Ns, 1mo (the calendar month), billing or lifetime
//	      warnAt: 0.8               # optional: Config.WarnAt
//	    action:
//	      type: block
//	      message: "You've reached your free tier limit. Upgrade to continue."  # optional
//	      upgradeUrl: https://example.com/upgrade  # optional: Config.UpgradeURL
//	      upgradePrompt:            # optional
//	        type: email
//	        provider: resend
//	        template: upgrade_prompt
//	plans:                          # optional
//	  free:
//	    firstReportFree: true
//	    period: lifetime            # optional: this plan's own period
//	  pro:
//	    priceIds: [price_pro_monthly]
//	    softLimit: false
//	topUps:                         # optional: Config.TopUps, packs of tokens bought once
//	  - priceId: price_tokens_10k
//	    tokens: 10_000
//	    validity: 365d              # optional; default: until spent
//	recovery:                       # optional
//	  retries: 0                    # only 0: a block is never retried
//
// The plan free is Config.Free; the other plans are Config.Plans, in the
// order of plans, then paid when only limit names it. The plans free and
// paid need no entry under plans; paid without priceIds takes any
// subscription no other plan claims. Every plan needs a limit, and a limit
// names a plan; the condition's period applies to every plan that does not
// give its own.
//
// An endpoint ending in /* gates its subtree ("POST /api/features/"); any
// other endpoint gates that path exactly. ServeMux wildcards such as {id}
// may be used in it.
//
// The action's message is the Free plan's blocked message: FreeLimitExceeded
// when the Free plan's limit is above 0; SubscriptionRequired when it is 0
// with firstReportFree; SubscriptionRequiredNoFreeReport when it is 0
// without. The other Messages keep their defaults. The upgradePrompt is
// checked but not part of the Config: the host configures its Notifier.
//
// Data starting with "{" or "[" is JSON (or, when it is not valid JSON but is valid
// YAML, a YAML flow mapping); anything else is YAML. Unknown fields are
// errors, and every error names the field's path and its value, as in
// `freemium: config: steps[0].condition.period: "30x" is not a period (use
// 30d, 1mo, billing or lifetime)`.
// The Config returned passes New's validation once Store is set; Store,
// Subscriptions, Notifier (a resendnotify.Notifier for an upgradePrompt by email
// through resend), Now, Logger and ReservationTTL are left to code.
func Parse(data []byte) (freemium.Config, error) {
	cfg, err := parseConfig(data)
	if err != nil {
		return freemium.Config{}, fmt.Errorf("freemium: config: %w", err)
	}
	return cfg, nil
}

// Load reads the file at path with Parse. It tells JSON from
// YAML by the content, not the file name. Its errors name the path.
func Load(path string) (freemium.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return freemium.Config{}, fmt.Errorf("freemium: config: %w", err)
	}
	cfg, err := parseConfig(data)
	if err != nil {
		return freemium.Config{}, fmt.Errorf("freemium: config: %s: %w", path, err)
	}
	return cfg, nil
}

// The fixed values of the format.
const (
	loopType      = "freemium"
	triggerType   = "api"
	conditionType = "usage"
	actionType    = "block"
	promptType    = "email"
	promptVendor  = "resend"
	unlimitedWord = "unlimited"
	paidPlanName  = "paid"
	freePlanName  = "free" // the Free plan's name, as freemium.Config gives it
	periodHint    = "(use 30d, 1mo, billing or lifetime)"
	limitHint     = "(use a whole number of tokens, or unlimited)"
)

func parseConfig(data []byte) (freemium.Config, error) {
	root, err := decodeTree(data)
	if err != nil {
		return freemium.Config{}, err
	}
	f, err := fields(root, "", "type", "name", "description", "opinion", "steps", "plans", "topUps", "recovery")
	if err != nil {
		return freemium.Config{}, err
	}
	if err := fixed(f, "", "type", loopType); err != nil {
		return freemium.Config{}, err
	}
	for _, k := range []string{"name", "description", "opinion"} {
		if _, err := optString(f, "", k); err != nil {
			return freemium.Config{}, err
		}
	}
	if err := parseRecovery(f["recovery"], "recovery"); err != nil {
		return freemium.Config{}, err
	}
	plans, err := parsePlans(f["plans"], "plans")
	if err != nil {
		return freemium.Config{}, err
	}

	steps := f["steps"]
	if steps == nil {
		return freemium.Config{}, errors.New("steps: missing: give one step with a trigger, a condition and an action")
	}
	if steps.Kind != yaml.SequenceNode {
		return freemium.Config{}, fmt.Errorf("steps: %s is not a list of steps", show(steps))
	}
	if len(steps.Content) != 1 {
		return freemium.Config{}, fmt.Errorf("steps: %d steps: give exactly one (a Config counts one allowance; load a config per Gate)", len(steps.Content))
	}
	var cfg freemium.Config
	if err := parseStep(resolve(steps.Content[0]), "steps[0]", plans, &cfg); err != nil {
		return freemium.Config{}, err
	}
	if cfg.TopUps, err = parseTopUps(f["topUps"], "topUps"); err != nil {
		return freemium.Config{}, err
	}
	return cfg, checkConfig(cfg)
}

// planSpec is an entry under plans.
type planSpec struct {
	name, path      string
	priceIDs        []string
	firstReportFree bool
	softLimit       bool
	period          *freemium.Period // nil: the condition's period
}

// periodOr is the plan's own period, else def.
func (p planSpec) periodOr(def freemium.Period) freemium.Period {
	if p.period != nil {
		return *p.period
	}
	return def
}

func parsePlans(n *yaml.Node, path string) ([]planSpec, error) {
	es, err := entries(n, path)
	if err != nil {
		return nil, err
	}
	var plans []planSpec
	for _, e := range es {
		p := planSpec{name: e.key, path: e.path}
		if strings.TrimSpace(e.key) == "" || !isText(e.key) {
			return nil, fmt.Errorf("%s: %q is not a plan name (use up to 256 bytes of text, such as pro)", path, e.key)
		}
		f, err := fields(e.value, e.path, "priceIds", "firstReportFree", "softLimit", "period")
		if err != nil {
			return nil, err
		}
		if ids := f["priceIds"]; ids != nil {
			ipath := child(e.path, "priceIds")
			if ids.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("%s: %s is not a list of price IDs", ipath, show(ids))
			}
			for i, id := range ids.Content {
				s, err := str(resolve(id), fmt.Sprintf("%s[%d]", ipath, i))
				if err != nil {
					return nil, err
				}
				p.priceIDs = append(p.priceIDs, s)
			}
		}
		if p.firstReportFree, err = optBool(f, e.path, "firstReportFree"); err != nil {
			return nil, err
		}
		if p.softLimit, err = optBool(f, e.path, "softLimit"); err != nil {
			return nil, err
		}
		if f["period"] != nil {
			period, err := parsePeriod(f["period"], child(e.path, "period"))
			if err != nil {
				return nil, err
			}
			p.period = &period
		}
		plans = append(plans, p)
	}
	return plans, nil
}

func parseStep(n *yaml.Node, path string, plans []planSpec, cfg *freemium.Config) error {
	f, err := fields(n, path, "trigger", "condition", "action")
	if err != nil {
		return err
	}
	for _, k := range []string{"trigger", "condition", "action"} {
		if f[k] == nil {
			return fmt.Errorf("%s: missing", child(path, k))
		}
	}
	if cfg.Gated, err = parseTrigger(f["trigger"], child(path, "trigger")); err != nil {
		return err
	}
	if err := parseCondition(f["condition"], child(path, "condition"), plans, cfg); err != nil {
		return err
	}
	return parseAction(f["action"], child(path, "action"), cfg)
}

var methodRE = regexp.MustCompile(`^[A-Z]+$`)

// parseTrigger returns the trigger's ServeMux pattern.
func parseTrigger(n *yaml.Node, path string) ([]string, error) {
	f, err := fields(n, path, "type", "endpoint", "method")
	if err != nil {
		return nil, err
	}
	if err := fixed(f, path, "type", triggerType); err != nil {
		return nil, err
	}
	method, err := optString(f, path, "method")
	if err != nil {
		return nil, err
	}
	if method != "" && !methodRE.MatchString(method) {
		return nil, fmt.Errorf("%s: %q is not a method (use upper case, such as POST)", child(path, "method"), method)
	}
	epath := child(path, "endpoint")
	if f["endpoint"] == nil {
		return nil, fmt.Errorf("%s: missing: give a path such as /api/features/*", epath)
	}
	endpoint, err := str(f["endpoint"], epath)
	if err != nil {
		return nil, err
	}
	pattern, err := endpointPattern(endpoint)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not an endpoint: %v", epath, endpoint, err)
	}
	if method != "" {
		pattern = method + " " + pattern
	}
	if err := checkPattern(pattern); err != nil {
		return nil, fmt.Errorf("%s: %q is not an endpoint: %v", epath, endpoint, err)
	}
	return []string{pattern}, nil
}

// endpointPattern translates an endpoint to the path of a ServeMux pattern:
// a trailing /* is the subtree ("/a/"); any other path matches exactly.
func endpointPattern(e string) (string, error) {
	if !strings.HasPrefix(e, "/") {
		return "", errors.New("use a path starting with /, such as /api/features/*")
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", errors.New("a path has no spaces or control characters")
		}
	}
	base, subtree := strings.CutSuffix(e, "/*")
	if strings.Contains(base, "*") {
		return "", errors.New("only a trailing /* is a wildcard")
	}
	switch {
	case subtree:
		return base + "/", nil
	case strings.HasSuffix(e, "/") && !strings.HasSuffix(e, "{$}"):
		return e + "{$}", nil // ServeMux reads a trailing / as the subtree
	}
	return e, nil
}

func parseCondition(n *yaml.Node, path string, plans []planSpec, cfg *freemium.Config) error {
	f, err := fields(n, path, "type", "limit", "period", "warnAt")
	if err != nil {
		return err
	}
	if err := fixed(f, path, "type", conditionType); err != nil {
		return err
	}
	ppath := child(path, "period")
	if f["period"] == nil {
		return fmt.Errorf("%s: missing %s", ppath, periodHint)
	}
	period, err := parsePeriod(f["period"], ppath)
	if err != nil {
		return err
	}
	if w := f["warnAt"]; w != nil {
		wpath := child(path, "warnAt")
		if tag := w.ShortTag(); w.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || w.Decode(&cfg.WarnAt) != nil {
			return fmt.Errorf("%s: %s is not a fraction (use one in (0, 1], such as 0.8)", wpath, show(w))
		}
	}

	lpath := child(path, "limit")
	if f["limit"] == nil {
		return fmt.Errorf("%s: missing: give every plan's tokens per period, such as free: 100", lpath)
	}
	limits, err := entries(f["limit"], lpath)
	if err != nil {
		return err
	}
	declared := map[string]bool{}
	for _, p := range plans {
		declared[p.name] = true
	}
	got := map[string]bool{}
	cfg.Free = freemium.Plan{Name: freePlanName, Period: period}
	for _, p := range plans {
		if p.name == freePlanName {
			cfg.Free.PriceIDs, cfg.Free.FirstReportFree, cfg.Free.SoftLimit = p.priceIDs, p.firstReportFree, p.softLimit
			cfg.Free.Period = p.periodOr(period)
		}
	}
	paid := map[string]int{} // plan name -> index in cfg.Plans
	for _, p := range plans {
		if p.name != freePlanName {
			paid[p.name] = len(cfg.Plans)
			cfg.Plans = append(cfg.Plans, freemium.Plan{Name: p.name, PriceIDs: p.priceIDs, Period: p.periodOr(period),
				FirstReportFree: p.firstReportFree, SoftLimit: p.softLimit})
		}
	}
	for _, e := range limits {
		limit, err := parseLimit(e.value, e.path)
		if err != nil {
			return err
		}
		switch {
		case e.key == freePlanName:
			cfg.Free.Limit = limit
		case declared[e.key]:
			cfg.Plans[paid[e.key]].Limit = limit
		case e.key == paidPlanName:
			cfg.Plans = append(cfg.Plans, freemium.Plan{Name: paidPlanName, Period: period, Limit: limit})
		default:
			return fmt.Errorf("%s: no plan %q: add it under plans, or use free or paid", lpath, e.key)
		}
		got[e.key] = true
	}
	if !got[freePlanName] {
		return fmt.Errorf("%s: no limit for plan %q: add free: 0 to allow free users nothing (beyond a first report when plans.free.firstReportFree)", lpath, freePlanName)
	}
	for _, p := range plans {
		if !got[p.name] {
			return fmt.Errorf("%s: no limit for plan %q, which %s declares", lpath, p.name, p.path)
		}
	}
	return nil
}

// parsePeriod reads Nd, Nh, Nm, Ns (N >= 1), 1mo, billing or lifetime.
func parsePeriod(n *yaml.Node, path string) (freemium.Period, error) {
	bad := fmt.Errorf("%s: %s is not a period %s", path, show(n), periodHint)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return freemium.Period{}, bad
	}
	s := n.Value
	switch s {
	case "1mo":
		return freemium.CalendarMonth, nil
	case "billing":
		return freemium.BillingCycle, nil
	case "lifetime":
		return freemium.Lifetime, nil
	}
	if num, ok := strings.CutSuffix(s, "mo"); ok && isDigits(num) {
		return freemium.Period{}, fmt.Errorf("%s: %q is not a period: only 1mo (the calendar month) is supported; use billing for the subscription's own period, or days such as %dd", path, s, 30*atoiSat(num))
	}
	d, err := parseSpan(s, path, bad)
	if err != nil {
		return freemium.Period{}, err
	}
	return freemium.Every(d), nil
}

// parseSpan reads a positive Nd, Nh, Nm (minutes) or Ns; bad is the error
// for anything else.
func parseSpan(s, path string, bad error) (time.Duration, error) {
	units := map[byte]time.Duration{'d': 24 * time.Hour, 'h': time.Hour, 'm': time.Minute, 's': time.Second}
	if len(s) < 2 || !isDigits(s[:len(s)-1]) || units[s[len(s)-1]] == 0 {
		return 0, bad
	}
	unit := units[s[len(s)-1]]
	num, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || num > math.MaxInt64/int64(unit) {
		return 0, fmt.Errorf("%s: %q is too long: use at most %dd", path, s, math.MaxInt64/int64(24*time.Hour))
	}
	if num < 1 {
		return 0, bad
	}
	return time.Duration(num) * unit, nil
}

// parseTopUps reads the top-ups: a list of priceId, tokens and an
// optional validity.
func parseTopUps(n *yaml.Node, path string) ([]freemium.TopUp, error) {
	if n == nil {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s: %s is not a list of top-ups", path, show(n))
	}
	var out []freemium.TopUp
	for i, item := range n.Content {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		f, err := fields(resolve(item), ipath, "priceId", "tokens", "validity")
		if err != nil {
			return nil, err
		}
		var t freemium.TopUp
		if f["priceId"] == nil {
			return nil, fmt.Errorf("%s: missing: give the pack's one-time price ID", child(ipath, "priceId"))
		}
		if t.PriceID, err = str(f["priceId"], child(ipath, "priceId")); err != nil {
			return nil, err
		}
		tpath := child(ipath, "tokens")
		if f["tokens"] == nil {
			return nil, fmt.Errorf("%s: missing: give the tokens one purchase grants, such as 10_000", tpath)
		}
		if tok := f["tokens"]; tok.Kind != yaml.ScalarNode || tok.ShortTag() != "!!int" || tok.Decode(&t.Tokens) != nil || t.Tokens < 1 {
			return nil, fmt.Errorf("%s: %s is not a token count (use a whole number above 0, such as 10_000)", tpath, show(f["tokens"]))
		}
		if v := f["validity"]; v != nil {
			vpath := child(ipath, "validity")
			bad := fmt.Errorf("%s: %s is not a validity (use 365d, 720h, 30m or 60s)", vpath, show(v))
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
				return nil, bad
			}
			if t.Validity, err = parseSpan(v.Value, vpath, bad); err != nil {
				return nil, err
			}
		}
		out = append(out, t)
	}
	return out, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// atoiSat reads digits, saturating at a million.
func atoiSat(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n > 1_000_000 {
		return 1_000_000
	}
	return n
}

// parseLimit reads a whole number >= 0, or unlimited.
func parseLimit(n *yaml.Node, path string) (int64, error) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!str":
			if n.Value == unlimitedWord {
				return freemium.Unlimited, nil
			}
		case "!!int":
			var v int64
			if n.Decode(&v) == nil && v >= 0 {
				return v, nil
			}
		}
	}
	return 0, fmt.Errorf("%s: %s is not a limit %s", path, show(n), limitHint)
}

func parseAction(n *yaml.Node, path string, cfg *freemium.Config) error {
	f, err := fields(n, path, "type", "message", "upgradeUrl", "upgradePrompt")
	if err != nil {
		return err
	}
	if err := fixed(f, path, "type", actionType); err != nil {
		return err
	}
	msg, err := optString(f, path, "message")
	if err != nil {
		return err
	}
	switch {
	case cfg.Free.Limit != 0:
		cfg.Messages.FreeLimitExceeded = msg
	case cfg.Free.FirstReportFree:
		cfg.Messages.SubscriptionRequired = msg
	default:
		cfg.Messages.SubscriptionRequiredNoFreeReport = msg
	}
	if cfg.UpgradeURL, err = optString(f, path, "upgradeUrl"); err != nil {
		return err
	}
	if p := f["upgradePrompt"]; p != nil {
		return parsePrompt(p, child(path, "upgradePrompt"))
	}
	return nil
}

// parsePrompt checks an upgradePrompt. The Config has no place for it: the
// host's Notifier sends the email.
func parsePrompt(n *yaml.Node, path string) error {
	f, err := fields(n, path, "type", "provider", "template")
	if err != nil {
		return err
	}
	if err := fixed(f, path, "type", promptType); err != nil {
		return err
	}
	if err := fixed(f, path, "provider", promptVendor); err != nil {
		return err
	}
	tpath := child(path, "template")
	if f["template"] == nil {
		return fmt.Errorf("%s: missing: name the email's template, such as upgrade_prompt", tpath)
	}
	t, err := str(f["template"], tpath)
	if err != nil {
		return err
	}
	if t == "" || strings.ContainsFunc(t, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("%s: %q is not a template name (use one without spaces, such as upgrade_prompt)", tpath, t)
	}
	return nil
}

func parseRecovery(n *yaml.Node, path string) error {
	f, err := fields(n, path, "retries")
	if err != nil {
		return err
	}
	if r := f["retries"]; r != nil {
		var v int64
		if r.Kind != yaml.ScalarNode || r.ShortTag() != "!!int" || r.Decode(&v) != nil || v != 0 {
			return fmt.Errorf("%s: %s is not supported: use 0 (a blocked request is answered at once, never retried)", child(path, "retries"), show(r))
		}
	}
	return nil
}

// noStore stands in for the Store when checkConfig runs New's validation.
type noStore struct{ freemium.Store }

// checkConfig runs New's validation on cfg, and names the config's fields
// in its error instead of the Config's.
func checkConfig(cfg freemium.Config) error {
	full := cfg
	full.Store = noStore{}
	_, err := freemium.New(full)
	if err == nil {
		return nil
	}
	condition := "steps[0].condition"
	pairs := []string{
		"Config.WarnAt", condition + ".warnAt",
		"Config.Gated[0]", "steps[0].trigger",
		"Config.Free.PriceIDs", "plans.free.priceIds",
		"Config.Free.Limit", child(condition+".limit", freePlanName),
		"Config.Free.Period", condition + ".period",
		"Config.Free", "plans.free",
	}
	for i, p := range cfg.Plans {
		field := fmt.Sprintf("Config.Plans[%d]", i)
		pairs = append(pairs,
			field+".PriceIDs", child(child("plans", p.Name), "priceIds"),
			field+".Limit", child(condition+".limit", p.Name),
			field+".Period", condition+".period",
			field, child("plans", p.Name))
	}
	pairs = append(pairs, "Config.Plans", "plans", "PriceIDs", "priceIds", "Config.TopUps", "topUps", "].PriceID", "].priceId")
	return errors.New(strings.NewReplacer(pairs...).Replace(strings.TrimPrefix(err.Error(), "freemium: ")))
}

// decodeTree parses data as JSON when it starts with "{" or "[" and is
// valid JSON, otherwise as one YAML document, and returns its root.
func decodeTree(data []byte) (*yaml.Node, error) {
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("empty: give a freemium loop in YAML or JSON")
	}
	var jsonErr error
	if trimmed[0] == '{' || trimmed[0] == '[' {
		n, err := jsonTree(trimmed)
		if err == nil {
			return n, nil
		}
		jsonErr = err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if err == nil {
		var next yaml.Node
		if dec.Decode(&next) != io.EOF {
			err = errors.New("more than one YAML document: give one")
		}
	}
	switch {
	case jsonErr != nil && err != nil:
		return nil, jsonErr // it looked like JSON: the JSON error says more
	case errors.Is(err, io.EOF):
		return nil, errors.New("empty: give a freemium loop in YAML or JSON")
	case err != nil:
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty: give a freemium loop in YAML or JSON")
	}
	return resolve(doc.Content[0]), nil
}

// jsonTree parses JSON into the nodes YAML would give, keeping key order.
func jsonTree(data []byte) (*yaml.Node, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(data[:se.Offset], []byte("\n"))
			col := se.Offset - int64(bytes.LastIndexByte(data[:se.Offset], '\n')) - 1
			return nil, fmt.Errorf("JSON syntax error at line %d, column %d: %v", line, col, err)
		}
		return nil, fmt.Errorf("JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return jsonValue(dec)
}

func jsonValue(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if t == '[' {
			n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
		}
		for dec.More() {
			if n.Kind == yaml.MappingNode {
				k, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("JSON: %w", err)
				}
				ks, _ := k.(string)
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ks})
			}
			v, err := jsonValue(dec)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, v)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, fmt.Errorf("JSON: %w", err)
		}
		return n, nil
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}, nil
	case json.Number:
		tag := "!!float"
		if !strings.ContainsAny(string(t), ".eE") {
			tag = "!!int"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(t)}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t)}, nil
	default: // nil
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
}

// entry is a key and its value in a mapping.
type entry struct {
	key, path string
	value     *yaml.Node
}

// entries reads a mapping (null reads as empty) whose keys are strings,
// each once.
func entries(n *yaml.Node, path string) ([]entry, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: %s is not a mapping", orRoot(path), show(n))
	}
	var es []entry
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k.ShortTag() == "!!merge" {
			return nil, fmt.Errorf("%s: merge keys (<<) are not supported: write the fields out", orRoot(path))
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			return nil, fmt.Errorf("%s: key %s is not a name (quote it)", orRoot(path), show(k))
		}
		p := child(path, k.Value)
		if seen[k.Value] {
			return nil, fmt.Errorf("%s: given twice", p)
		}
		seen[k.Value] = true
		es = append(es, entry{key: k.Value, path: p, value: resolve(n.Content[i+1])})
	}
	return es, nil
}

// fields reads a mapping with the known keys; null values count as absent.
func fields(n *yaml.Node, path string, known ...string) (map[string]*yaml.Node, error) {
	es, err := entries(n, path)
	if err != nil {
		return nil, err
	}
	f := map[string]*yaml.Node{}
	for _, e := range es {
		if !contains(known, e.key) {
			return nil, fmt.Errorf("%s: unknown field (use %s)", e.path, strings.Join(known, ", "))
		}
		if !isNull(e.value) {
			f[e.key] = e.value
		}
	}
	return f, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fixed requires f[key] to be want.
func fixed(f map[string]*yaml.Node, path, key, want string) error {
	p := child(path, key)
	n := f[key]
	if n == nil {
		return fmt.Errorf("%s: missing: use %s", p, want)
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || n.Value != want {
		return fmt.Errorf("%s: %s is not supported: use %s", p, show(n), want)
	}
	return nil
}

func optString(f map[string]*yaml.Node, path, key string) (string, error) {
	if f[key] == nil {
		return "", nil
	}
	return str(f[key], child(path, key))
}

func str(n *yaml.Node, path string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return "", fmt.Errorf("%s: %s is not a string (quote it)", path, show(n))
	}
	return n.Value, nil
}

func optBool(f map[string]*yaml.Node, path, key string) (bool, error) {
	n := f[key]
	if n == nil {
		return false, nil
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		return false, fmt.Errorf("%s: %s is not true or false", child(path, key), show(n))
	}
	return b, nil
}

// resolve follows YAML aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// show is a node as an error shows it: a scalar quoted when it is a
// string, a collection by its kind.
func show(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind != yaml.ScalarNode:
		return "an alias"
	case n.ShortTag() == "!!str":
		return strconv.Quote(clip(n.Value))
	}
	return clip(n.Value)
}

// clip shortens s to 60 runes for an error message.
func clip(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "..."
	}
	return s
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// child is the path of key in path: a.key, or a["odd key"].
func child(path, key string) string {
	switch {
	case !nameRE.MatchString(key):
		return path + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

// isText reports whether s is what the Gate takes as a name: valid UTF-8
// without control characters, at most 256 bytes.
func isText(s string) bool {
	return len(s) <= 256 && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// checkPattern reports whether an http.ServeMux refuses pattern p.
func checkPattern(p string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	http.NewServeMux().Handle(p, http.NotFoundHandler())
	return nil
}
