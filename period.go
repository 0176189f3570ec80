package freemium

import (
	"fmt"
	"time"
)

// A Period is the window a Plan's Limit applies to: Every(d), CalendarMonth,
// BillingCycle or Lifetime. Usage recorded in one window never counts
// against another. The zero Period is CalendarMonth.
type Period struct {
	kind  periodKind
	every time.Duration
}

type periodKind uint8

const (
	periodCalendarMonth periodKind = iota
	periodBillingCycle
	periodLifetime
	periodEvery
)

var (
	// CalendarMonth windows are calendar months in UTC.
	CalendarMonth = Period{kind: periodCalendarMonth}
	// BillingCycle windows are the current period of the user's
	// subscription; CalendarMonth when none is known.
	BillingCycle = Period{kind: periodBillingCycle}
	// Lifetime is one window that never ends: usage never resets.
	Lifetime = Period{kind: periodLifetime}
)

// Every returns a Period of consecutive windows of length d, anchored at the
// user's first activity (the first Reserve, Record or MarkFirstReportUsed). d is rounded down to a whole microsecond,
// the precision a Store keeps; it must be at least a second.
func Every(d time.Duration) Period {
	return Period{kind: periodEvery, every: d.Truncate(time.Microsecond)}
}

// String describes the period, as in "calendar month" or "every 720h0m0s".
func (p Period) String() string {
	switch p.kind {
	case periodBillingCycle:
		return "billing cycle"
	case periodLifetime:
		return "lifetime"
	case periodEvery:
		return "every " + p.every.String()
	default:
		return "calendar month"
	}
}

func (p Period) validate() error {
	if p.kind == periodEvery && p.every < time.Second {
		return fmt.Errorf("Every(%v) is too short: use at least a second", p.every)
	}
	return nil
}

// Bounds of the Lifetime window. Both are inside what every Store can
// represent (Postgres timestamptz included).
var (
	lifetimeStart = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	lifetimeEnd   = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// window resolves p at now for a user placed on the plan by subscription
// sub (nil: none).
func (p Period) window(now time.Time, sub *Subscription) Window {
	switch p.kind {
	case periodEvery:
		return Window{Every: p.every}
	case periodLifetime:
		return Window{Start: lifetimeStart, End: lifetimeEnd}
	case periodBillingCycle:
		if sub == nil {
			break
		}
		if w, ok := billingWindow(now, *sub); ok {
			// Stores keep microseconds; the provider's times may have more.
			return Window{Start: w.Start.Truncate(time.Microsecond), End: w.End.Truncate(time.Microsecond)}
		}
	}
	return calendarMonth(now)
}

func calendarMonth(now time.Time) Window {
	now = now.UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	return Window{Start: start, End: start.AddDate(0, 1, 0)}
}

// maxBillingAge: a billing period that started longer ago than this is not
// rolled forward (it is bad data; and time.Duration spans 292 years).
const maxBillingAge = 100 * 365 * 24 * time.Hour

// billingWindow is the subscription's current period, or false when it has
// none usable (CalendarMonth applies). When the subscription
// data is older than its period (a renewal not seen yet), the period is
// rolled forward, unless the subscription is past_due: by whole calendar months when it is one (so a monthly
// period from the 10th runs to the next 10th), otherwise by its length.
func billingWindow(now time.Time, sub Subscription) (Window, bool) {
	start, end := sub.CurrentPeriodStart.UTC(), sub.CurrentPeriodEnd.UTC()
	if start.IsZero() || !end.After(start) || now.Before(start) || now.Sub(start) > maxBillingAge {
		return Window{}, false
	}
	if now.Before(end) || sub.Status == StatusPastDue {
		// A past_due subscription past its period, in Config.PastDueGrace,
		// keeps what is left of that period's allowance: no new one.
		return Window{Start: start, End: end}, true
	}
	if months := wholeMonths(start, end); months > 0 {
		// The number of periods passed, estimated from the average month and
		// then corrected, so that rolling costs O(1) however stale the data.
		n := int(now.Sub(start) / (time.Duration(months) * 730 * time.Hour))
		for n > 0 && now.Before(start.AddDate(0, n*months, 0)) {
			n--
		}
		for !now.Before(start.AddDate(0, (n+1)*months, 0)) {
			n++
		}
		return Window{Start: start.AddDate(0, n*months, 0), End: start.AddDate(0, (n+1)*months, 0)}, true
	}
	length := end.Sub(start)
	start = start.Add(now.Sub(start) / length * length)
	return Window{Start: start, End: start.Add(length)}, true
}

// wholeMonths is the number of calendar months from start to end, when end
// is exactly that many months (1 to 12) after start; otherwise 0.
func wholeMonths(start, end time.Time) int {
	for m := 1; m <= 12; m++ {
		if t := start.AddDate(0, m, 0); t.Equal(end) {
			return m
		} else if t.After(end) {
			return 0
		}
	}
	return 0
}
