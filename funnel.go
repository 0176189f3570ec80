package freemium

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Funnel is the free-to-paid conversion report of Gate.Funnel.
type Funnel struct {
	From time.Time `json:"from"` // the range of limit hits and prompts counted
	To   time.Time `json:"to"`

	// LimitHit counts the users blocked in the range (once per user).
	LimitHit int `json:"limit_hit"`
	// Prompted counts the users sent an upgrade prompt in the range.
	Prompted int `json:"prompted"`
	// Converted counts the prompted users who moved from Free to a paid
	// plan within Config.AttributionWindow after their first prompt.
	Converted int `json:"converted"`
	// ConversionRate is Converted/Prompted; 0 when nobody was prompted.
	ConversionRate float64 `json:"conversion_rate"`
	// MedianTimeToConvert is the median time from a converted user's first
	// prompt to the conversion; 0 when nobody converted. In JSON, seconds.
	MedianTimeToConvert time.Duration `json:"-"`
	// ByPlan counts the conversions by the plan converted to.
	ByPlan map[string]int `json:"by_plan"`
	// ToppedUp counts the prompted users who bought a top-up within
	// Config.AttributionWindow after their first prompt.
	ToppedUp int `json:"topped_up"`
	// TopUps counts the top-ups bought in the range, by anyone, and
	// TopUpTokens the tokens they granted.
	TopUps      int   `json:"top_ups"`
	TopUpTokens int64 `json:"top_up_tokens"`
}

// MarshalJSON writes f with median_seconds_to_convert for
// MedianTimeToConvert.
func (f Funnel) MarshalJSON() ([]byte, error) {
	type plain Funnel
	return json.Marshal(struct {
		plain
		MedianSeconds float64 `json:"median_seconds_to_convert"`
	}{plain(f), f.MedianTimeToConvert.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *Funnel) UnmarshalJSON(b []byte) error {
	type plain Funnel
	var v struct {
		plain
		MedianSeconds float64 `json:"median_seconds_to_convert"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Funnel(v.plain)
	f.MedianTimeToConvert = time.Duration(v.MedianSeconds * float64(time.Second))
	return nil
}

// Funnel reports, for notifications created in [from, to) (to is excluded:
// for a range up to now, pass a to just after it): the users who
// hit a limit, the users prompted to upgrade (the prompt was sent), and how
// many of those converted within Config.AttributionWindow after their
// first prompt, with the rate, the median time to convert and the plans.
// It also counts the top-ups bought in the range, and the prompted users
// who bought one within the window. It reads the Store's outbox,
// conversions and top-ups.
func (g *Gate) Funnel(ctx context.Context, from, to time.Time) (Funnel, error) {
	f := Funnel{From: from, To: to, ByPlan: map[string]int{}}
	if !from.Before(to) {
		return f, fmt.Errorf("freemium: Funnel: from (%v) is not before to (%v)", from, to)
	}
	records, err := g.store.Notifications(ctx, from, to)
	if err != nil {
		return f, fmt.Errorf("freemium: funnel: %w", err)
	}
	hit := map[string]bool{}
	prompted := map[string]time.Time{} // user -> first prompt sent
	for _, r := range records {
		if r.Kind == UpgradePrompt || r.Kind == LimitReached {
			hit[r.UserID] = true
		}
		if r.Kind == UpgradePrompt && r.State == DeliverySent {
			if at, ok := prompted[r.UserID]; !ok || r.SentAt.Before(at) {
				prompted[r.UserID] = r.SentAt
			}
		}
	}
	f.LimitHit, f.Prompted = len(hit), len(prompted)
	first, last := from, from
	for _, at := range prompted {
		first, last = minTime(first, at), maxTime(last, at)
	}
	attributed := last.Add(g.cfg.AttributionWindow + time.Nanosecond)
	topUps, err := g.store.TopUps(ctx, first, maxTime(to, attributed))
	if err != nil {
		return f, fmt.Errorf("freemium: funnel: %w", err)
	}
	toppedUp := map[string]bool{}
	for _, t := range topUps {
		if !t.At.Before(from) && t.At.Before(to) {
			f.TopUps++
			f.TopUpTokens += t.Tokens
		}
		if at, ok := prompted[t.UserID]; ok && !t.At.Before(at) && t.At.Sub(at) <= g.cfg.AttributionWindow {
			toppedUp[t.UserID] = true
		}
	}
	f.ToppedUp = len(toppedUp)
	if len(prompted) == 0 {
		return f, nil
	}
	conversions, err := g.store.Conversions(ctx, first, attributed)
	if err != nil {
		return f, fmt.Errorf("freemium: funnel: %w", err)
	}
	var waits []time.Duration
	converted := map[string]bool{}
	for _, c := range conversions { // oldest first: a user's first conversion counts
		at, ok := prompted[c.UserID]
		if !ok || converted[c.UserID] || c.At.Before(at) || c.At.Sub(at) > g.cfg.AttributionWindow {
			continue
		}
		converted[c.UserID] = true
		f.ByPlan[c.Plan]++
		waits = append(waits, c.At.Sub(at))
	}
	f.Converted = len(converted)
	f.ConversionRate = float64(f.Converted) / float64(f.Prompted)
	if n := len(waits); n > 0 {
		slices.Sort(waits)
		f.MedianTimeToConvert = (waits[(n-1)/2] + waits[n/2]) / 2
	}
	return f, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
