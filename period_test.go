package freemium_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

func TestWindowBounds(t *testing.T) {
	const day = 24 * time.Hour
	anchor := time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)
	fixedStart := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	fixedEnd := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	pst := time.FixedZone("UTC-8", -8*60*60)

	daily := freemium.Window{Every: day}
	tests := []struct {
		name       string
		w          freemium.Window
		anchor     time.Time
		now        time.Time
		start, end time.Time
	}{
		// t0…t9: one daily window stepped through at fixed instants.
		{"t0 now is the anchor", daily, anchor, anchor, anchor, anchor.Add(day)},
		{"t1 a µs after the anchor", daily, anchor, anchor.Add(time.Microsecond), anchor, anchor.Add(day)},
		{"t2 a ns before the boundary", daily, anchor, anchor.Add(day - 1), anchor, anchor.Add(day)},
		{"t3 at the boundary", daily, anchor, anchor.Add(day), anchor.Add(day), anchor.Add(2 * day)},
		{"t4 a ns after the boundary", daily, anchor, anchor.Add(day + 1), anchor.Add(day), anchor.Add(2 * day)},
		{"t5 far after", daily, anchor, anchor.Add(1000*day + 5*time.Hour), anchor.Add(1000 * day), anchor.Add(1001 * day)},
		// Before the anchor (a clock behind the one that anchored the user):
		// the first window, never one before the user's first activity.
		{"t6 an hour before the anchor", daily, anchor, anchor.Add(-time.Hour), anchor, anchor.Add(day)},
		{"t7 a window before the anchor", daily, anchor, anchor.Add(-day), anchor, anchor.Add(day)},
		{"t8 a ns more than a window before", daily, anchor, anchor.Add(-day - 1), anchor, anchor.Add(day)},
		{"t9 far before", daily, anchor, anchor.Add(-3650*day - time.Minute), anchor, anchor.Add(day)},

		{"zero anchor means now", daily, time.Time{}, anchor.Add(37 * time.Minute), anchor.Add(37 * time.Minute), anchor.Add(day + 37*time.Minute)},
		{"90m windows", freemium.Window{Every: 90 * time.Minute}, anchor, anchor.Add(4 * time.Hour), anchor.Add(3 * time.Hour), anchor.Add(270 * time.Minute)},
		{"90m windows before the anchor", freemium.Window{Every: 90 * time.Minute}, anchor, anchor.Add(-4 * time.Hour), anchor, anchor.Add(90 * time.Minute)},
		{"now in another zone", daily, anchor, anchor.Add(30 * time.Hour).In(pst), anchor.Add(day), anchor.Add(2 * day)},
		{"weekly", freemium.Window{Every: 7 * day}, anchor, anchor.Add(20 * day), anchor.Add(14 * day), anchor.Add(21 * day)},
		{"yearly, years on", freemium.Window{Every: 365 * day}, anchor, anchor.Add(3*365*day + time.Hour), anchor.Add(3 * 365 * day), anchor.Add(4 * 365 * day)},

		{"fixed window, now inside", freemium.Window{Start: fixedStart, End: fixedEnd}, anchor, anchor, fixedStart, fixedEnd},
		{"fixed window, now after it", freemium.Window{Start: fixedStart, End: fixedEnd}, anchor, fixedEnd.AddDate(1, 0, 0), fixedStart, fixedEnd},
		{"fixed window, zero anchor", freemium.Window{Start: fixedStart, End: fixedEnd}, time.Time{}, anchor, fixedStart, fixedEnd},
		{"fixed window, negative Every", freemium.Window{Start: fixedStart, End: fixedEnd, Every: -day}, anchor, anchor, fixedStart, fixedEnd},
		{"zero Window", freemium.Window{}, anchor, anchor, time.Time{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end := tt.w.Bounds(tt.anchor, tt.now)
			assert.True(t, start.Equal(tt.start), "start = %v, want %v", start, tt.start)
			assert.True(t, end.Equal(tt.end), "end = %v, want %v", end, tt.end)
		})
	}
}

// FuzzWindowBounds checks the invariants of Every windows: the window holds
// now, is Every long, and starts a whole number of windows from the anchor.
//
// The input is bytes rather than int64s: the fuzzer only nudges an int64 by
// ±100, while it rewrites bytes, so bytes reach far from the seeds.
func FuzzWindowBounds(f *testing.F) {
	const (
		year        = 365 * 24 * time.Hour
		maxEvery    = 10 * year
		maxDistance = 100 * year
	)
	anchor := time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC).UnixNano()
	seeds := []windowBoundsInput{
		{anchor, 0, 24 * time.Hour, false},
		{anchor, 24 * time.Hour, 24 * time.Hour, false},
		{anchor, 24*time.Hour - 1, 24 * time.Hour, false},
		{anchor, -time.Hour, 24 * time.Hour, false},
		{anchor, -24 * time.Hour, 24 * time.Hour, false},
		{anchor, -24*time.Hour - 1, 24 * time.Hour, false},
		{anchor, 99 * year, time.Second, false},
		{anchor, -99 * year, maxEvery, false},
		{0, 1, time.Second + 1, false},
		{-anchor, 12345, 90 * time.Minute, true},
	}
	for _, s := range seeds {
		f.Add(s.encode())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := decodeWindowBoundsInput(data)
		// Keep to inputs time.Duration can hold: Every in [1s, 10y], now
		// within 100 years of the anchor.
		every := in.every
		if every < time.Second || every > maxEvery {
			every = time.Second + time.Duration(uint64(every)%uint64(maxEvery-time.Second+1))
		}
		a := time.Unix(0, in.anchorNanos).UTC()
		now := a.Add(in.offset % maxDistance)
		if in.zeroAnchor {
			a = time.Time{}
		}

		start, end := freemium.Window{Every: every}.Bounds(a, now)

		if !in.zeroAnchor && now.Before(a) {
			// Before the anchor: the first window.
			if !start.Equal(a) || !end.Equal(a.Add(every)) {
				t.Fatalf("Bounds(%v, %v) every %v = [%v, %v), want the first window", a, now, every, start, end)
			}
			return
		}
		if start.After(now) || !now.Before(end) {
			t.Fatalf("Bounds(%v, %v) every %v = [%v, %v): does not hold now", a, now, every, start, end)
		}
		if got := end.Sub(start); got != every {
			t.Fatalf("Bounds(%v, %v) every %v = [%v, %v): length %v", a, now, every, start, end, got)
		}
		base := a
		if in.zeroAnchor {
			base = now
		}
		if d := start.Sub(base); d%every != 0 {
			t.Fatalf("Bounds(%v, %v) every %v = [%v, %v): start is %v from the anchor, not a multiple", a, now, every, start, end, d)
		}
		if in.zeroAnchor && !start.Equal(now) {
			t.Fatalf("Bounds(zero, %v) every %v starts at %v, want now", now, every, start)
		}
	})
}

// windowBoundsInput is one input of FuzzWindowBounds, before it is brought
// into range.
type windowBoundsInput struct {
	anchorNanos   int64
	offset, every time.Duration
	zeroAnchor    bool
}

func (in windowBoundsInput) encode() []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(in.anchorNanos))
	b = binary.LittleEndian.AppendUint64(b, uint64(in.offset))
	b = binary.LittleEndian.AppendUint64(b, uint64(in.every))
	if in.zeroAnchor {
		return append(b, 1)
	}
	return append(b, 0)
}

// decodeWindowBoundsInput reads what encode wrote; short data reads as
// zeros, and the last byte's low bit is zeroAnchor.
func decodeWindowBoundsInput(data []byte) windowBoundsInput {
	var buf [25]byte
	copy(buf[:], data)
	return windowBoundsInput{
		anchorNanos: int64(binary.LittleEndian.Uint64(buf[0:])),
		offset:      time.Duration(binary.LittleEndian.Uint64(buf[8:])),
		every:       time.Duration(binary.LittleEndian.Uint64(buf[16:])),
		zeroAnchor:  buf[24]&1 == 1,
	}
}

func TestPeriodString(t *testing.T) {
	tests := []struct {
		name string
		p    freemium.Period
		want string
	}{
		{"CalendarMonth", freemium.CalendarMonth, "calendar month"},
		{"zero Period", freemium.Period{}, "calendar month"},
		{"BillingCycle", freemium.BillingCycle, "billing cycle"},
		{"Lifetime", freemium.Lifetime, "lifetime"},
		{"Every 30 days", freemium.Every(720 * time.Hour), "every 720h0m0s"},
		{"Every 90m", freemium.Every(90 * time.Minute), "every 1h30m0s"},
		{"Every rounds down to a µs", freemium.Every(time.Second + 1500*time.Nanosecond), "every 1.000001s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.p.String())
		})
	}
}

// periodUsage returns, at now, the Usage of a user without activity on a
// Gate with the given Free plan, paid plans and subscription checker.
func periodUsage(tb testing.TB, free freemium.Plan, subs freemium.SubscriptionChecker, plans []freemium.Plan, now time.Time) freemium.Usage {
	tb.Helper()
	g, err := freemium.New(freemium.Config{
		Store:         freemium.NewMemoryStore(),
		Now:           freemiumtest.NewClock(now).Now,
		Free:          free,
		Plans:         plans,
		Subscriptions: subs,
	})
	require.NoError(tb, err)
	u, err := g.Usage(context.Background(), "u1")
	require.NoError(tb, err)
	return u
}

func TestZeroPeriodIsCalendarMonth(t *testing.T) {
	require.Equal(t, freemium.CalendarMonth, freemium.Period{})
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	dec := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	jan := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		now        time.Time
		start, end time.Time
	}{
		{"mid-month", time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC), nov, dec},
		{"first instant", nov, nov, dec},
		{"last µs", dec.Add(-time.Microsecond), nov, dec},
		{"December 31st", jan.Add(-time.Hour), dec, jan},
		{"still November west of UTC", time.Date(2026, 11, 30, 20, 0, 0, 0, time.FixedZone("UTC-8", -8*60*60)), dec, jan},
		{"already December east of UTC", time.Date(2026, 12, 1, 0, 30, 0, 0, time.FixedZone("UTC+1", 60*60)), nov, dec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range []freemium.Period{{}, freemium.CalendarMonth} {
				u := periodUsage(t, freemium.Plan{Limit: 100, Period: p}, nil, nil, tt.now)
				assert.Equal(t, tt.start, u.PeriodStart, "PeriodStart of %v", p)
				assert.Equal(t, tt.end, u.PeriodEnd, "PeriodEnd of %v", p)
			}
		})
	}
}

func TestBillingCycleFallsBackToCalendarMonth(t *testing.T) {
	now := time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	dec := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	subStart := time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC)
	subEnd := time.Date(2026, 12, 10, 8, 0, 0, 0, time.UTC)
	pro := freemium.Plan{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000, Period: freemium.BillingCycle}
	active := freemium.Subscription{Status: freemium.StatusActive, PriceIDs: []string{"price_pro"}}
	withPeriod := func(s freemium.Subscription, start, end time.Time) *freemium.Subscription {
		s.CurrentPeriodStart, s.CurrentPeriodEnd = start, end
		return &s
	}
	tests := []struct {
		name       string
		sub        *freemium.Subscription // nil: no checker at all
		plan       string
		start, end time.Time
	}{
		{"no checker", nil, "free", nov, dec},
		{"no subscription", &freemium.Subscription{}, "free", nov, dec},
		{"subscribed, period unknown", &active, "pro", nov, dec},
		{"subscribed, period ends before it starts", withPeriod(active, subStart, nov), "pro", nov, dec},
		{"subscribed, period of zero length", withPeriod(active, subStart, subStart), "pro", nov, dec},
		{"subscribed, period known", withPeriod(active, subStart, subEnd), "pro", subStart, subEnd},
		// Found by FuzzStripeWebhook: past time.Duration's 292 years, rolling
		// forward overflowed into a window that did not hold now.
		{"subscribed, a period of the year 1700", withPeriod(active, time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1700, 1, 2, 0, 0, 0, 0, time.UTC)), "pro", nov, dec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var checker freemium.SubscriptionChecker
			if tt.sub != nil {
				subs := freemiumtest.NewSubscriptions()
				subs.Set("u1", *tt.sub)
				checker = subs
			}
			free := freemium.Plan{Limit: 10, Period: freemium.BillingCycle}
			u := periodUsage(t, free, checker, []freemium.Plan{pro}, now)
			require.Equal(t, tt.plan, u.Plan)
			assert.Equal(t, tt.start, u.PeriodStart)
			assert.Equal(t, tt.end, u.PeriodEnd)
		})
	}
}

// A subscription whose renewal has not been seen yet rolls forward: whole
// calendar months for monthly and yearly periods, the period's length
// otherwise.
func TestBillingCycleRollsForward(t *testing.T) {
	at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 8, 0, 0, 0, time.UTC) }
	pro := freemium.Plan{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000, Period: freemium.BillingCycle}
	tests := []struct {
		name               string
		subStart, subEnd   time.Time
		now                time.Time
		wantStart, wantEnd time.Time
	}{
		{"monthly, a period late", at(2026, 11, 10), at(2026, 12, 10), at(2026, 12, 15), at(2026, 12, 10), at(2027, 1, 10)},
		{"monthly into February", at(2027, 1, 10), at(2027, 2, 10), at(2027, 2, 15), at(2027, 2, 10), at(2027, 3, 10)},
		{"monthly, at the renewal instant", at(2026, 11, 10), at(2026, 12, 10), at(2026, 12, 10), at(2026, 12, 10), at(2027, 1, 10)},
		{"monthly, a year late", at(2026, 11, 10), at(2026, 12, 10), at(2027, 11, 11), at(2027, 11, 10), at(2027, 12, 10)},
		{"quarterly", at(2026, 1, 5), at(2026, 4, 5), at(2026, 8, 1), at(2026, 7, 5), at(2026, 10, 5)},
		{"yearly", at(2026, 3, 1), at(2027, 3, 1), at(2028, 4, 1), at(2028, 3, 1), at(2029, 3, 1)},
		{"weekly, by length", at(2026, 11, 2), at(2026, 11, 9), at(2026, 11, 20), at(2026, 11, 16), at(2026, 11, 23)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subs := freemiumtest.NewSubscriptions()
			subs.Subscribe("u1", "price_pro", tt.subStart, tt.subEnd)
			u := periodUsage(t, freemium.Plan{}, subs, []freemium.Plan{pro}, tt.now)
			require.Equal(t, "pro", u.Plan)
			assert.Equal(t, tt.wantStart, u.PeriodStart)
			assert.Equal(t, tt.wantEnd, u.PeriodEnd)
		})
	}
}
