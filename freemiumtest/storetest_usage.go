package freemiumtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/freemiumkit/freemium"
)

// usageTests are the cases of usage: first reports, reservations and their
// holds, limits, records and windows.
var usageTests = []storeTest{
	{"FirstReportFreeThenSubscriptionRequired", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freeFirstReport, UpgradeURL: "https://example.com/upgrade"})
		d := e.check("u1", 5000)
		equal(t, "first Check allowed", d.Allowed, true)
		equal(t, "first Check FirstReport", d.FirstReport, true)

		r := e.reserve("u1", 5000)
		equal(t, "first Reserve OK", r.OK(), true)
		equal(t, "first Reserve FirstReport", r.Decision().FirstReport, true)
		e.ok(r.Commit(e.ctx, 6000), "Commit")

		d = e.check("u1", 1)
		equal(t, "Allowed after first report", d.Allowed, false)
		equal(t, "Reason", d.Reason, freemium.ReasonSubscriptionRequired)
		equal(t, "Message", d.Message, freemium.DefaultMessages.SubscriptionRequired)
		equal(t, "UpgradeURL", d.UpgradeURL, "https://example.com/upgrade")
		equal(t, "FirstReportUsed", d.FirstReportUsed, true)
		equal(t, "Used", d.Used, int64(6000))
		equal(t, "Percentage of a zero limit", d.Percentage, 100.0)
		equal(t, "Lifetime PeriodEnd is zero", d.PeriodEnd.IsZero(), true)
		if !errors.Is(d.Err(), freemium.ErrBlocked) {
			t.Errorf("Err() = %v, want ErrBlocked", d.Err())
		}
		r = e.reserve("u1", 1)
		equal(t, "Reserve after first report OK", r.OK(), false)
		if err := r.Commit(e.ctx, 1); !errors.Is(err, freemium.ErrBlocked) {
			t.Errorf("Commit of a blocked reservation = %v, want ErrBlocked", err)
		}
		equal(t, "Used after blocked Commit", e.usage("u1").Used, int64(6000))
	}},
	{"FirstReportCancelGivesItBack", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freeFirstReport})
		r := e.reserve("u1", 10)
		equal(t, "first OK", r.OK(), true)
		equal(t, "second Reserve while the first is held", e.reserve("u1", 10).OK(), false)
		e.ok(r.Cancel(e.ctx), "Cancel")
		e.ok(r.Cancel(e.ctx), "second Cancel")
		r2 := e.reserve("u1", 10)
		equal(t, "Reserve after Cancel OK", r2.OK(), true)
		equal(t, "Reserve after Cancel FirstReport", r2.Decision().FirstReport, true)
		e.ok(r2.Commit(e.ctx, 10), "Commit")
		e.ok(r2.Cancel(e.ctx), "Cancel after Commit")
		equal(t, "first report used after Commit", e.usage("u1").FirstReportUsed, true)
		equal(t, "Reserve after Commit", e.reserve("u1", 10).OK(), false)
	}},
	{"FirstReportHoldExpires", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freeFirstReport, ReservationTTL: time.Minute})
		equal(t, "first OK", e.reserve("u1", 10).OK(), true)
		e.clock.Advance(time.Minute)
		equal(t, "first report free again once the hold expired", e.reserve("u1", 10).Decision().FirstReport, true)
	}},
	{"MarkFirstReportUsed", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freeFirstReport})
		equal(t, "FirstReport before", e.check("u1", 10).FirstReport, true)
		e.ok(e.gate.MarkFirstReportUsed(e.ctx, "u1"), "MarkFirstReportUsed")
		e.ok(e.gate.MarkFirstReportUsed(e.ctx, "u1"), "MarkFirstReportUsed again")
		d := e.check("u1", 10)
		equal(t, "Allowed after", d.Allowed, false)
		equal(t, "Reason", d.Reason, freemium.ReasonSubscriptionRequired)
		equal(t, "another user untouched", e.check("u2", 10).FirstReport, true)
	}},
	{"ParallelFirstReportsAdmitOne", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freeFirstReport})
		var admitted atomic.Int64
		parallel(50, func(int) {
			r, err := e.gate.Reserve(e.ctx, "u1", 100)
			if err != nil {
				t.Errorf("Reserve: %v", err)
				return
			}
			if r.OK() {
				admitted.Add(1)
			}
		})
		equal(t, "admitted of 50 parallel first reports", admitted.Load(), int64(1))
	}},
	{"ParallelReservesNeverPassTheLimit", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 1000}})
		var admitted atomic.Int64
		parallel(200, func(int) {
			r, err := e.gate.Reserve(e.ctx, "u1", 10)
			if err != nil {
				t.Errorf("Reserve: %v", err)
				return
			}
			if r.OK() {
				admitted.Add(1)
				return
			}
			// A refusal reports the state that refused it.
			if d := r.Decision(); d.Used+d.Reserved+10 <= 1000 || d.Remaining >= 10 {
				t.Errorf("refused with Used %d, Reserved %d, Remaining %d of 1000", d.Used, d.Reserved, d.Remaining)
			}
		})
		equal(t, "admitted of 200 reserving 10 against 1000", admitted.Load(), int64(100))
		u := e.usage("u1")
		equal(t, "Reserved", u.Reserved, int64(1000))
		equal(t, "Remaining", u.Remaining, int64(0))
	}},
	{"LimitBoundary", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		for _, period := range []freemium.Period{freemium.CalendarMonth, freemium.Every(time.Hour)} {
			t.Run(period.String(), func(t *testing.T) {
				e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 100, Period: period}})
				e.record("u1", 60, "")
				equal(t, "60+40 <= 100", e.check("u1", 40).Allowed, true)
				d := e.check("u1", 41)
				equal(t, "60+41 > 100", d.Allowed, false)
				equal(t, "Reason", d.Reason, freemium.ReasonEstimateExceedsRemaining)
				equal(t, "Message", d.Message, "This report needs about 41 tokens, more than the 40 left this period.")
				equal(t, "Percentage", d.Percentage, 60.0)
				equal(t, "Reserve 41", e.reserve("u1", 41).OK(), false)
				r := e.reserve("u1", 40)
				equal(t, "Reserve 40", r.OK(), true)
				equal(t, "Check 0 with the limit held", e.check("u1", 0).Allowed, true)
				equal(t, "Check 1 with the limit held", e.check("u1", 1).Allowed, false)
				equal(t, "Reserve 1 with the limit held", e.reserve("u1", 1).OK(), false)
				e.ok(r.Commit(e.ctx, 40), "Commit")
				d = e.check("u1", 1)
				equal(t, "Reason with the limit used", d.Reason, freemium.ReasonLimitExceeded)
				equal(t, "Message with the limit used", d.Message, freemium.DefaultMessages.FreeLimitExceeded)
				// The next window: its usage starts from zero, with the
				// latest usage in the one before.
				e.clock.Set(e.usage("u1").PeriodEnd)
				equal(t, "Reserve 101 in the next window", e.reserve("u1", 101).OK(), false)
				equal(t, "Reserve 100 in the next window", e.reserve("u1", 100).OK(), true)
				equal(t, "Reserve 1 in the next window, the limit held", e.reserve("u1", 1).OK(), false)
			})
		}
	}},
	{"PaidPlanMessageAndWarning", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freeFirstReport, Plans: []freemium.Plan{pro}})
		end := T0.AddDate(0, 0, 16)
		e.subs.Subscribe("u1", "price_pro", T0.AddDate(0, 0, -14), end)
		e.record("u1", 799, "")
		u := e.usage("u1")
		equal(t, "Plan", u.Plan, "pro")
		equal(t, "Warning at 79.9%", u.Warning, false)
		e.record("u1", 51, "")
		d := e.check("u1", 200)
		equal(t, "Allowed past the limit", d.Allowed, false)
		equal(t, "Warning at 85%", d.Warning, true)
		equal(t, "Reason", d.Reason, freemium.ReasonEstimateExceedsRemaining)
		equal(t, "Message", d.Message, "This report needs about 200 tokens, more than the 150 left this period.")
		equal(t, "PeriodEnd", d.PeriodEnd, end)
		equal(t, "Remaining", d.Remaining, int64(150))
		e.record("u1", 150, "")
		d = e.check("u1", 1)
		equal(t, "Reason at the limit", d.Reason, freemium.ReasonLimitExceeded)
		equal(t, "Message at the limit", d.Message, "Usage limit reached (100% used). Upgrade your plan or wait until "+end.Format("January 2, 2006")+".")
	}},
	{"UnlimitedAndSoftLimit", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Plans: []freemium.Plan{
			{Name: "unlimited", PriceIDs: []string{"price_u"}, Limit: freemium.Unlimited},
			{Name: "soft", PriceIDs: []string{"price_s"}, Limit: 100, SoftLimit: true},
		}})
		e.subs.Subscribe("u", "price_u", time.Time{}, time.Time{})
		e.subs.Subscribe("s", "price_s", time.Time{}, time.Time{})
		e.record("u", freemium.MaxTokens, "")
		d := e.check("u", freemium.MaxTokens)
		equal(t, "Unlimited allowed", d.Allowed, true)
		equal(t, "Unlimited Limit", d.Limit, freemium.Unlimited)
		equal(t, "Unlimited Remaining", d.Remaining, freemium.Unlimited)
		equal(t, "Unlimited Percentage", d.Percentage, 0.0)

		e.record("s", 90, "")
		d = e.check("s", 10)
		equal(t, "soft within", d.Allowed, true)
		equal(t, "soft within Overage", d.Overage, false)
		r := e.reserve("s", 50)
		equal(t, "soft past the limit allowed", r.OK(), true)
		equal(t, "soft past the limit Overage", r.Decision().Overage, true)
		e.ok(r.Commit(e.ctx, 50), "Commit")
		u := e.usage("s")
		equal(t, "soft Used", u.Used, int64(140))
		equal(t, "soft Percentage past 100", u.Percentage, 140.0)
		equal(t, "soft Usage.Overage", u.Overage, true)
	}},
	{"ReservationTTL", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 100}, ReservationTTL: 10 * time.Minute})
		r := e.reserve("u1", 100)
		equal(t, "Reserve all", r.OK(), true)
		e.clock.Advance(10*time.Minute - time.Microsecond)
		equal(t, "hold counts until its TTL", e.check("u1", 1).Allowed, false)
		e.clock.Advance(time.Microsecond)
		equal(t, "hold stops counting at its TTL", e.check("u1", 1).Allowed, true)
		equal(t, "Reserved after TTL", e.usage("u1").Reserved, int64(0))
		e.ok(r.Commit(e.ctx, 70), "Commit after the TTL")
		u := e.usage("u1")
		equal(t, "Used after a late Commit", u.Used, int64(70))
	}},
	{"CommitAndCancelAreIdempotent", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 1000}})
		r := e.reserve("u1", 100)
		e.ok(r.Commit(e.ctx, 150), "Commit")
		e.ok(r.Commit(e.ctx, 150), "second Commit")
		e.ok(e.gate.CommitReservation(e.ctx, "u1", r.ID(), 150), "CommitReservation after Commit")
		e.ok(r.Cancel(e.ctx), "Cancel after Commit")
		u := e.usage("u1")
		equal(t, "Used after three commits of one reservation", u.Used, int64(150))
		equal(t, "Reserved", u.Reserved, int64(0))

		r = e.reserve("u1", 100)
		e.ok(e.gate.CancelReservation(e.ctx, "u1", r.ID()), "CancelReservation")
		e.ok(e.gate.CancelReservation(e.ctx, "u1", r.ID()), "second CancelReservation")
		equal(t, "Reserved after Cancel", e.usage("u1").Reserved, int64(0))
		e.ok(r.Commit(e.ctx, 0), "Commit of zero after Cancel")
		e.ok(r.Commit(e.ctx, 7), "Commit after a Commit of zero")
		equal(t, "Used", e.usage("u1").Used, int64(150))

		for _, id := range []string{"rsv_unknown", "", "x\x00y"} {
			if err := e.gate.CommitReservation(e.ctx, "u1", id, 1); !errors.Is(err, freemium.ErrReservationNotFound) {
				t.Errorf("CommitReservation(%q) = %v, want ErrReservationNotFound", id, err)
			}
			if err := e.gate.CancelReservation(e.ctx, "u1", id); !errors.Is(err, freemium.ErrReservationNotFound) {
				t.Errorf("CancelReservation(%q) = %v, want ErrReservationNotFound", id, err)
			}
		}
	}},
	{"CommitAfterCancelRecords", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 1000}})
		e.ok(e.gate.Record(e.ctx, "u1", 1, ""), "Record")
		e.reserve("u1", 10)
		r := e.reserve("u1", 100)
		e.ok(r.Cancel(e.ctx), "Cancel")
		e.ok(r.Commit(e.ctx, 80), "Commit after Cancel")
		u := e.usage("u1")
		equal(t, "Used", u.Used, int64(81))
		equal(t, "Reserved: the other hold", u.Reserved, int64(10))
	}},
	{"ParallelCommitsOfOneReservationCountOnce", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 1000}})
		r := e.reserve("u1", 100)
		parallel(20, func(int) {
			if err := r.Commit(e.ctx, 90); err != nil {
				t.Errorf("Commit: %v", err)
			}
		})
		equal(t, "Used", e.usage("u1").Used, int64(90))
	}},
	{"CommitRetentionAfterExpiry", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 1000}, ReservationTTL: time.Minute})
		late := e.reserve("u1", 10)
		committed := e.reserve("u1", 10)
		e.ok(committed.Commit(e.ctx, 10), "Commit")
		e.clock.Advance(time.Minute + 24*time.Hour)
		e.ok(committed.Commit(e.ctx, 10), "Commit again a day after expiry")
		e.ok(late.Commit(e.ctx, 7), "Commit a day after expiry")
		equal(t, "Used", e.usage("u1").Used, int64(17))
		gone := e.reserve("u1", 10)
		e.clock.Advance(time.Minute + 24*time.Hour + time.Microsecond)
		for _, when := range []string{"as the user's latest hold", "after a write that may prune it"} {
			if err := gone.Commit(e.ctx, 10); !errors.Is(err, freemium.ErrReservationNotFound) {
				t.Errorf("Commit more than a day after expiry, %s = %v, want ErrReservationNotFound", when, err)
			}
			if err := gone.Cancel(e.ctx); !errors.Is(err, freemium.ErrReservationNotFound) {
				t.Errorf("Cancel more than a day after expiry, %s = %v, want ErrReservationNotFound", when, err)
			}
			e.reserve("u1", 10)
		}
		equal(t, "Used at the end", e.usage("u1").Used, int64(17))
	}},
	{"RecordIdempotencyKeys", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: freemium.Unlimited}})
		parallel(20, func(int) {
			if err := e.gate.Record(e.ctx, "u1", 10, "job-1"); err != nil {
				t.Errorf("Record: %v", err)
			}
		})
		equal(t, "Used after 20 racing Records with one key", e.usage("u1").Used, int64(10))
		e.record("u1", 5, "job-2")
		e.record("u1", 5, "")
		e.record("u1", 5, "")
		e.record("u2", 7, "job-1")
		equal(t, "Used u1", e.usage("u1").Used, int64(25))
		equal(t, "Used u2 (keys are per user)", e.usage("u2").Used, int64(7))
	}},
	{"InvalidInputWritesNothing", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freeFirstReport})
		badUsers := []string{"", string(make([]byte, 257)), "a\xffb", "a\nb", "a\x00b"}
		for _, u := range badUsers {
			if _, err := e.gate.Check(e.ctx, u, 1); !errors.Is(err, freemium.ErrInvalidUserID) {
				t.Errorf("Check(%q) = %v, want ErrInvalidUserID", u, err)
			}
			if _, err := e.gate.Reserve(e.ctx, u, 1); !errors.Is(err, freemium.ErrInvalidUserID) {
				t.Errorf("Reserve(%q) = %v, want ErrInvalidUserID", u, err)
			}
			if err := e.gate.Record(e.ctx, u, 1, ""); !errors.Is(err, freemium.ErrInvalidUserID) {
				t.Errorf("Record(%q) = %v, want ErrInvalidUserID", u, err)
			}
			if err := e.gate.MarkFirstReportUsed(e.ctx, u); !errors.Is(err, freemium.ErrInvalidUserID) {
				t.Errorf("MarkFirstReportUsed(%q) = %v, want ErrInvalidUserID", u, err)
			}
			if _, err := e.gate.Usage(e.ctx, u); !errors.Is(err, freemium.ErrInvalidUserID) {
				t.Errorf("Usage(%q) = %v, want ErrInvalidUserID", u, err)
			}
		}
		for _, n := range []int64{-1, freemium.MaxTokens + 1} {
			if _, err := e.gate.Reserve(e.ctx, "u1", n); !errors.Is(err, freemium.ErrInvalidTokens) {
				t.Errorf("Reserve(%d) = %v, want ErrInvalidTokens", n, err)
			}
			if err := e.gate.Record(e.ctx, "u1", n, ""); !errors.Is(err, freemium.ErrInvalidTokens) {
				t.Errorf("Record(%d) = %v, want ErrInvalidTokens", n, err)
			}
		}
		if err := e.gate.Record(e.ctx, "u1", 1, "k\x00"); !errors.Is(err, freemium.ErrInvalidIdempotencyKey) {
			t.Errorf("Record with a NUL key = %v, want ErrInvalidIdempotencyKey", err)
		}
		u := e.usage("u1")
		equal(t, "Used after invalid calls", u.Used, int64(0))
		equal(t, "Reserved after invalid calls", u.Reserved, int64(0))
		equal(t, "first report still free after invalid calls", e.check("u1", 1).FirstReport, true)
	}},
	{"UnicodeUserIDs", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 100}})
		long := string(make([]rune, 0)) // 256 bytes of a 4-byte rune
		for range 64 {
			long += "😀"
		}
		for _, u := range []string{"ünïcödé", "用户", long, "a b'\"; DROP TABLE accounts; --"} {
			e.record(u, 10, "k")
			equal(t, fmt.Sprintf("Used of %q", u), e.usage(u).Used, int64(10))
		}
	}},
	{"CalendarMonthResets", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 100, Period: freemium.CalendarMonth}})
		e.record("u1", 100, "")
		u := e.usage("u1")
		equal(t, "PeriodStart", u.PeriodStart, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
		equal(t, "PeriodEnd", u.PeriodEnd, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
		e.clock.Set(time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC))
		r := e.reserve("u1", 0)
		e.clock.Set(time.Date(2026, 11, 30, 23, 59, 59, 999999000, time.UTC))
		equal(t, "blocked at the month's last microsecond", e.check("u1", 1).Allowed, false)
		e.clock.Set(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
		u = e.usage("u1")
		equal(t, "Used in the new month", u.Used, int64(0))
		equal(t, "allowed in the new month", e.check("u1", 100).Allowed, true)
		e.ok(r.Commit(e.ctx, 30), "Commit of a November reservation in December")
		equal(t, "a reservation's tokens count in the period it was made in", e.usage("u1").Used, int64(0))
		e.clock.Set(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC))
		equal(t, "November's usage", e.usage("u1").Used, int64(130))
	}},
	{"EveryWindowsAnchorAtFirstActivity", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 100, Period: freemium.Every(24 * time.Hour)}})
		u := e.usage("u1")
		equal(t, "PeriodStart of a new user", u.PeriodStart, T0)
		anchor := T0.Add(90 * time.Minute)
		e.clock.Set(anchor)
		e.record("u1", 100, "")
		e.clock.Set(anchor.Add(24*time.Hour - time.Microsecond))
		u = e.usage("u1")
		equal(t, "Used at the end of the window", u.Used, int64(100))
		equal(t, "PeriodStart", u.PeriodStart, anchor)
		equal(t, "PeriodEnd", u.PeriodEnd, anchor.Add(24*time.Hour))
		e.clock.Set(anchor.Add(24 * time.Hour))
		u = e.usage("u1")
		equal(t, "Used in the next window", u.Used, int64(0))
		equal(t, "next PeriodStart", u.PeriodStart, anchor.Add(24*time.Hour))
		e.clock.Set(anchor.Add(-time.Hour)) // a clock behind the anchor: still the first window
		equal(t, "PeriodStart before the anchor", e.usage("u1").PeriodStart, anchor)
		e.clock.Set(anchor.Add(75*time.Hour + 30*time.Minute))
		e.record("u1", 40, "")
		u = e.usage("u1")
		equal(t, "Used in the fourth window", u.Used, int64(40))
		equal(t, "fourth PeriodStart", u.PeriodStart, anchor.Add(72*time.Hour))
	}},
	{"EveryWindowFromFirstReserve", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 100, Period: freemium.Every(time.Hour)}})
		rs := make([]*freemium.Reservation, 10)
		parallel(10, func(i int) {
			r, err := e.gate.Reserve(e.ctx, "u1", 10)
			if err != nil {
				t.Errorf("Reserve: %v", err)
			}
			rs[i] = r
		})
		e.clock.Advance(30 * time.Minute)
		for _, r := range rs {
			if r == nil {
				t.FailNow() // Reserve failed, reported above
			}
			e.ok(r.Commit(e.ctx, 1), "Commit")
		}
		u := e.usage("u1")
		equal(t, "Used counts in the window anchored at the first Reserve", u.Used, int64(10))
		equal(t, "PeriodStart", u.PeriodStart, T0)
	}},
	{"RacingFirstActivityAgreesOnTheAnchor", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// Two instances whose clocks differ by a millisecond race each new
		// user's first Reserve and Record on an Every plan: all the usage
		// must land in one window.
		store := ns(t)
		plan := freemium.Plan{Limit: 1_000_000, Period: freemium.Every(time.Hour)}
		gates := make([]*freemium.Gate, 2)
		for i := range gates {
			clock := NewClock(T0.Add(time.Duration(i) * time.Millisecond))
			g, err := freemium.New(freemium.Config{Store: store, Free: plan, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			gates[i] = g
		}
		ctx := context.Background()
		for u := range 30 {
			user := fmt.Sprintf("new-%d", u)
			parallel(4, func(i int) {
				g := gates[i%2]
				if i < 2 {
					if err := g.Record(ctx, user, 10, ""); err != nil {
						t.Errorf("Record: %v", err)
					}
					return
				}
				r, err := g.Reserve(ctx, user, 5)
				if err != nil {
					t.Errorf("Reserve: %v", err)
					return
				}
				if err := r.Commit(ctx, 5); err != nil {
					t.Errorf("Commit: %v", err)
				}
			})
			for i, g := range gates {
				u, err := g.Usage(ctx, user)
				if err != nil {
					t.Fatal(err)
				}
				equal(t, fmt.Sprintf("Used of %s seen by gate %d", user, i), u.Used, int64(30))
			}
		}
	}},
	{"CommitReleasesItsHoldWhateverTheClocks", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// Two instances, B's clock 90 s ahead of A's, past the 1-minute
		// TTL. B reserves after A's first hold expired by B's clock (a
		// Store may recount the holds then); A then reserves 900 of 1,000
		// and commits them. The Commit releases A's hold: 100 are left.
		store, ctx := ns(t), context.Background()
		plan := freemium.Plan{Limit: 1000, Period: freemium.CalendarMonth}
		clockA, clockB := NewClock(T0), NewClock(T0.Add(90*time.Second))
		gate := func(c *Clock) *freemium.Gate {
			g, err := freemium.New(freemium.Config{Store: store, Free: plan, ReservationTTL: time.Minute, Now: c.Now})
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
		a, b := gate(clockA), gate(clockB)
		reserve := func(g *freemium.Gate, tokens int64) *freemium.Reservation {
			t.Helper()
			r, err := g.Reserve(ctx, "u1", tokens)
			if err != nil {
				t.Fatalf("Reserve(%d): %v", tokens, err)
			}
			return r
		}
		first := reserve(a, 10)
		onB := reserve(b, 10)
		equal(t, "B's Reserve OK", onB.OK(), true)
		if err := onB.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
		if err := first.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
		r := reserve(a, 900)
		equal(t, "A's Reserve of 900 OK", r.OK(), true)
		if err := r.Commit(ctx, 900); err != nil {
			t.Fatal(err)
		}
		for name, g := range map[string]*freemium.Gate{"A": a, "B": b} {
			u, err := g.Usage(ctx, "u1")
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "Used seen by "+name, u.Used, int64(900))
			equal(t, "Reserved seen by "+name+" after the Commit", u.Reserved, int64(0))
		}
		equal(t, "the last 100 admitted", reserve(a, 100).OK(), true)
	}},
	{"LifetimeNeverResets", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 100, Period: freemium.Lifetime}})
		e.record("u1", 100, "")
		e.clock.Advance(10 * 365 * 24 * time.Hour)
		d := e.check("u1", 1)
		equal(t, "blocked ten years on", d.Allowed, false)
		equal(t, "Used", d.Used, int64(100))
		equal(t, "PeriodStart", d.PeriodStart.IsZero(), true)
	}},
	{"TwoGatesShareTheStore", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		cfg := freemium.Config{Free: freemium.Plan{Limit: 100}}
		e := newEnv(t, ns, cfg)
		cfg.Store, cfg.Now = e.store, e.clock.Now
		other := e.newGate(cfg)
		r, err := other.Reserve(e.ctx, "u1", 60)
		e.ok(err, "Reserve on the other gate")
		equal(t, "Reserved seen by the first gate", e.usage("u1").Reserved, int64(60))
		e.ok(e.gate.CommitReservation(e.ctx, "u1", r.ID(), 60), "CommitReservation on the first gate")
		u, err := other.Usage(e.ctx, "u1")
		e.ok(err, "Usage on the other gate")
		equal(t, "Used seen by the other gate", u.Used, int64(60))
	}},
	{"UsageSaturatesInsteadOfOverflowing", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: freemium.Unlimited}})
		// 9,300 records of MaxTokens pass math.MaxInt64 (about 9,223 of them).
		const n = 9300
		for i := range n {
			e.ok(e.gate.Record(e.ctx, "u1", freemium.MaxTokens, ""), fmt.Sprint("Record ", i))
		}
		equal(t, "Used after passing the int64 maximum", e.usage("u1").Used, int64(math.MaxInt64))
		e.record("u1", 1, "")
		equal(t, "Used stays at the maximum", e.usage("u1").Used, int64(math.MaxInt64))
	}},
	{"LoadFindsAnOldWindow", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// Usage in many windows; Load still finds the oldest one's.
		store, ctx := ns(t), context.Background()
		for i := range 8 {
			w := freemium.Window{Start: T0.AddDate(0, i, 0), End: T0.AddDate(0, i+1, 0)}
			if err := store.Record(ctx, "u1", w, freemium.Unlimited, int64(i+1), "", T0.AddDate(0, i, 0)); err != nil {
				t.Fatal(err)
			}
		}
		for _, i := range []int{0, 3, 7} {
			st, err := store.Load(ctx, "u1", T0.AddDate(0, 8, 0), func(freemium.Account) freemium.Window {
				return freemium.Window{Start: T0.AddDate(0, i, 0), End: T0.AddDate(0, i+1, 0)}
			})
			if err != nil {
				t.Fatal(err)
			}
			equal(t, fmt.Sprintf("Used in window %d", i), st.Used, int64(i+1))
		}
		st, err := store.Load(ctx, "u1", T0, func(freemium.Account) freemium.Window {
			return freemium.Window{Start: T0.Add(-time.Hour), End: T0}
		})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "Used in a window never recorded in", st.Used, int64(0))
	}},
	{"ReserveInAnOlderWindow", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// Back on a plan whose window began before the latest window with
		// usage: that window's own usage decides, and Commit adds to it.
		store, ctx := ns(t), context.Background()
		older := freemium.Window{Start: T0, End: T0.Add(2 * time.Hour)}
		newer := freemium.Window{Start: T0.Add(time.Hour), End: T0.Add(2 * time.Hour)}
		now := T0.Add(90 * time.Minute)
		refs := map[string]freemium.HoldRef{}
		hold := func(id string, w freemium.Window, tokens int64) freemium.ReserveResult {
			t.Helper()
			h := freemium.Hold{ID: id, UserID: "u1", Window: w, Tokens: tokens, Limit: 100, ExpiresAt: now.Add(time.Minute)}
			r, err := store.Reserve(ctx, h, now)
			if err != nil {
				t.Fatalf("Reserve %s: %v", id, err)
			}
			refs[id] = h.Ref(r)
			return r
		}
		state := func(w freemium.Window) freemium.State { return loadIn(t, store, "u1", w, now) }
		if err := store.Record(ctx, "u1", older, freemium.Unlimited, 60, "", T0); err != nil {
			t.Fatal(err)
		}
		if err := store.Record(ctx, "u1", newer, freemium.Unlimited, 5, "", now); err != nil {
			t.Fatal(err)
		}
		r := hold("h1", older, 40)
		equal(t, "40 fit beside the older window's 60", r.Admitted, true)
		equal(t, "Used seen by Reserve in the older window", r.State.Used, int64(60))
		equal(t, "1 more does not fit", hold("h2", older, 1).Admitted, false)
		if err := store.Commit(ctx, refs["h1"], 30, now); err != nil {
			t.Fatal(err)
		}
		equal(t, "older window's usage after Commit", state(older).Used, int64(90))
		equal(t, "newer window's usage untouched", state(newer).Used, int64(5))
		r = hold("h3", newer, 95)
		equal(t, "95 fit beside the newer window's 5", r.Admitted, true)
		equal(t, "Used seen by Reserve in the newer window", r.State.Used, int64(5))
	}},
	{"OlderWindowWithAHugeLimit", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// Limits and tokens use the whole int64 range in every path.
		store, ctx := ns(t), context.Background()
		older := freemium.Window{Start: T0, End: T0.Add(2 * time.Hour)}
		newer := freemium.Window{Start: T0.Add(time.Hour), End: T0.Add(2 * time.Hour)}
		now := T0.Add(90 * time.Minute)
		if err := store.Record(ctx, "u1", newer, freemium.Unlimited, 5, "", now); err != nil {
			t.Fatal(err)
		}
		for i, w := range []freemium.Window{older, newer} {
			r, err := store.Reserve(ctx, freemium.Hold{ID: fmt.Sprint("h", i), UserID: "u1", Window: w,
				Tokens: freemium.MaxTokens, Limit: math.MaxInt64 - 1, ExpiresAt: now.Add(time.Minute)}, now)
			if err != nil {
				t.Fatalf("Reserve in window %d: %v", i, err)
			}
			equal(t, fmt.Sprint("admitted in window ", i), r.Admitted, true)
		}
	}},
	{"HoldExpiringAtOnceIsStillAnswered", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// A hold whose expiry is its own now (a TTL under a microsecond) is
		// admitted, and counts for nothing after.
		store, ctx := ns(t), context.Background()
		w := freemium.Window{Start: T0, End: T0.Add(time.Hour)}
		for i := range 2 {
			r, err := store.Reserve(ctx, freemium.Hold{ID: fmt.Sprint("h", i), UserID: "u1", Window: w, Tokens: 10,
				Limit: 100, ExpiresAt: T0}, T0)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, fmt.Sprint("Reserve ", i, " admitted"), r.Admitted, true)
			equal(t, fmt.Sprint("Reserved before Reserve ", i), r.State.Reserved, int64(0))
		}
		equal(t, "Reserved after", load(t, store, "u1").Reserved, int64(0))
	}},
	{"ExpiredHoldsStopCountingBeforeAnyPrune", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// Holds that expired stay on a Store's books until something prunes
		// them; a Load after their expiry counts only the live ones.
		store, ctx := ns(t), context.Background()
		w := freemium.Window{Start: T0, End: T0.Add(time.Hour)}
		for _, h := range []freemium.Hold{
			{ID: "short", UserID: "u1", Window: w, Tokens: 10, Limit: 100, FirstReport: true, ExpiresAt: T0.Add(time.Minute)},
			{ID: "long", UserID: "u1", Window: w, Tokens: 20, Limit: 100, ExpiresAt: T0.Add(10 * time.Minute)},
		} {
			if _, err := store.Reserve(ctx, h, T0); err != nil {
				t.Fatal(err)
			}
		}
		st := load(t, store, "u1")
		equal(t, "Reserved while both live", st.Reserved, int64(30))
		equal(t, "first report held while live", st.FirstReportHeld, true)
		st, err := store.Load(ctx, "u1", T0.Add(2*time.Minute), hourWindow)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "Reserved after the short hold expired", st.Reserved, int64(20))
		equal(t, "first report no longer held", st.FirstReportHeld, false)
	}},
	{"CommittedHoldsNeverCountAgain", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// A committed hold stays committed however its record is kept: a
		// Load or Reserve that sums the live holds (after a counted hold
		// expired) does not count it, and a second Commit or a Cancel does
		// not record or release it again. carried is committed and then
		// followed by another hold; last is committed as its user's latest.
		store, ctx := ns(t), context.Background()
		w := freemium.Window{Start: T0, End: T0.Add(time.Hour)}
		if err := store.Record(ctx, "u1", w, freemium.Unlimited, 1, "", T0); err != nil {
			t.Fatal(err)
		}
		hold := func(id string, ttl time.Duration) (freemium.Hold, freemium.HoldRef) {
			t.Helper()
			h := freemium.Hold{ID: id, UserID: "u1", Window: w, Tokens: 10, Limit: 31, ExpiresAt: T0.Add(ttl)}
			r, err := store.Reserve(ctx, h, T0)
			if err != nil || !r.Admitted {
				t.Fatalf("Reserve %s = %+v, %v", id, r, err)
			}
			return h, h.Ref(r)
		}
		commit := func(ref freemium.HoldRef, tokens int64) {
			t.Helper()
			if err := store.Commit(ctx, ref, tokens, T0.Add(2*time.Minute)); err != nil {
				t.Fatalf("Commit %s: %v", ref.ID, err)
			}
		}
		_, carried := hold("carried", time.Hour)
		commit(carried, 5)
		hold("short", time.Minute)
		_, last := hold("last", time.Hour)
		commit(last, 5)
		r, err := store.Reserve(ctx, freemium.Hold{ID: "refused", UserID: "u1", Window: w, Tokens: 100, Limit: 31,
			ExpiresAt: T0.Add(time.Minute)}, T0)
		if err != nil || r.Admitted {
			t.Fatalf("Reserve over the limit = %+v, %v", r, err)
		}
		later := T0.Add(2 * time.Minute) // the short hold has expired
		st, err := store.Load(ctx, "u1", later, hourWindow)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "Reserved once the short hold expired", st.Reserved, int64(0))
		equal(t, "Used", st.Used, int64(11))
		for _, ref := range []freemium.HoldRef{carried, last, {ID: "carried", UserID: "u1"}, {ID: "last", UserID: "u1"}} {
			commit(ref, 100)
			if err := store.Cancel(ctx, ref, later); err != nil {
				t.Fatalf("Cancel %s after Commit: %v", ref.ID, err)
			}
		}
		// Used 11 and 20 tokens of holds: of a limit of 31, exactly these
		// fit.
		r, err = store.Reserve(ctx, freemium.Hold{ID: "fits", UserID: "u1", Window: w, Tokens: 20, Limit: 31,
			ExpiresAt: later.Add(time.Minute)}, later)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "a Reserve after the recount admitted", r.Admitted, true)
		equal(t, "Reserved before it", r.State.Reserved, int64(0))
		equal(t, "Used before it", r.State.Used, int64(11))
		st, err = store.Load(ctx, "u1", later.Add(2*time.Minute), hourWindow)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "Reserved once that hold expired too", st.Reserved, int64(0))
	}},
	{"HoldsLeaveTheBooksOnce", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// Each hold stops counting once, however it ends: by Commit, by
		// Cancel, by expiring (whether a later Reserve has pruned it or
		// not), or by Cancel and then Commit.
		store, ctx := ns(t), context.Background()
		w := freemium.Window{Start: T0, End: T0.Add(time.Hour)}
		refs := map[string]freemium.HoldRef{}
		reserve := func(id string, tokens int64, expires, now time.Time) {
			t.Helper()
			h := freemium.Hold{ID: id, UserID: "u1", Window: w, Tokens: tokens, Limit: 1000, ExpiresAt: expires}
			r, err := store.Reserve(ctx, h, now)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, id+" admitted", r.Admitted, true)
			refs[id] = h.Ref(r)
		}
		reservedAt := func(now time.Time) int64 {
			t.Helper()
			st, err := store.Load(ctx, "u1", now, hourWindow)
			if err != nil {
				t.Fatal(err)
			}
			return st.Reserved
		}
		reserve("expires", 100, T0.Add(time.Minute), T0)
		reserve("canceled", 200, T0.Add(30*time.Minute), T0)
		reserve("committed", 50, T0.Add(30*time.Minute), T0)
		equal(t, "all three held", reservedAt(T0), int64(350))
		if err := store.Cancel(ctx, refs["canceled"], T0); err != nil {
			t.Fatal(err)
		}
		if err := store.Commit(ctx, refs["canceled"], 7, T0); err != nil {
			t.Fatal(err)
		}
		equal(t, "canceled then committed: given back once", reservedAt(T0), int64(150))
		t1 := T0.Add(2 * time.Minute)
		equal(t, "expired hold stops counting", reservedAt(t1), int64(50))
		reserve("after", 400, t1.Add(time.Hour), t1) // prunes the expired hold, if the Store prunes
		equal(t, "after a Reserve past the expiry", reservedAt(t1), int64(450))
		for _, id := range []string{"expires", "committed", "committed"} {
			if err := store.Commit(ctx, refs[id], 10, t1); err != nil {
				t.Fatal(err)
			}
		}
		equal(t, "only the live hold counts", reservedAt(t1), int64(400))
		if err := store.Cancel(ctx, refs["after"], t1); err != nil {
			t.Fatal(err)
		}
		equal(t, "nothing held", reservedAt(t1), int64(0))
		st, err := store.Load(ctx, "u1", t1, hourWindow)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "usage of the commits", st.Used, int64(7+10+10))
		// A full allowance is admitted again: no hold lingers in the sum.
		reserve("full", 1000-27, t1.Add(time.Hour), t1)
	}},
	{"WritesRaceAWindowRoll", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// Writes to a user's window race writes that move the user into the
		// next one: Commits of holds placed in November, November Records
		// and prompts, and December Records, all at once just after the
		// month turned. Each lands in its own window, once.
		store, ctx := ns(t), context.Background()
		nov := freemium.Window{Start: T0.AddDate(0, 0, -14), End: T0.AddDate(0, 0, 16)}
		dec := freemium.Window{Start: nov.End, End: nov.End.AddDate(0, 1, 0)}
		before, after := dec.Start.Add(-time.Minute), dec.Start.Add(time.Minute)
		if err := store.Record(ctx, "u1", nov, freemium.Unlimited, 1, "", before); err != nil {
			t.Fatal(err)
		}
		const n = 16
		refs := make([]freemium.HoldRef, n)
		for i := range refs {
			h := freemium.Hold{ID: fmt.Sprint("h", i), UserID: "u1", Window: nov, Tokens: 10, Limit: freemium.Unlimited,
				ExpiresAt: after.Add(time.Hour)}
			r, err := store.Reserve(ctx, h, before)
			if err != nil {
				t.Fatal(err)
			}
			refs[i] = h.Ref(r)
		}
		var added atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if err := store.Commit(ctx, refs[i], 3, after); err != nil {
					t.Errorf("Commit %d: %v", i, err)
				}
			})
			wg.Go(func() {
				if err := store.Record(ctx, "u1", dec, freemium.Unlimited, 5, "", after); err != nil {
					t.Errorf("December Record: %v", err)
				}
			})
			wg.Go(func() {
				if err := store.Record(ctx, "u1", nov, freemium.Unlimited, 7, fmt.Sprint("k", i%4), after); err != nil {
					t.Errorf("November Record: %v", err)
				}
			})
			wg.Go(func() {
				n := freemium.Notification{ID: fmt.Sprint("ntf_", i), Kind: freemium.LimitReached, UserID: "u1", CreatedAt: after}
				ok, err := store.Enqueue(ctx, n, nov.Start, false, after)
				if err != nil {
					t.Errorf("Enqueue: %v", err)
				}
				if ok {
					added.Add(1)
				}
			})
		}
		wg.Wait()
		state := func(w freemium.Window) freemium.State { return loadIn(t, store, "u1", w, after) }
		st := state(nov)
		equal(t, "November's usage", st.Used, int64(1+n*3+4*7))
		equal(t, "November's prompt marked", st.Notified.Has(freemium.LimitReached), true)
		equal(t, "prompts added", added.Load(), int32(1))
		equal(t, "nothing held", st.Reserved, int64(0))
		st = state(dec)
		equal(t, "December's usage", st.Used, int64(n*5))
		equal(t, "December's marks", st.Notified, freemium.NotifiedKinds(0))
	}},
	{"CommitGivenAnotherUsersRef", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// An ID alone does not reach a hold: a HoldRef naming another user
		// than the hold's (or none) is ErrReservationNotFound for Commit
		// and Cancel, and writes nothing, whether or not that user exists;
		// the hold's own user can still commit it.
		store, ctx := ns(t), context.Background()
		w := freemium.Window{Start: T0, End: T0.Add(time.Hour)}
		for _, user := range []string{"bob", "mallory"} {
			if err := store.Record(ctx, user, w, freemium.Unlimited, 1, "", T0); err != nil {
				t.Fatal(err)
			}
		}
		for i, first := range []bool{false, true} {
			h := freemium.Hold{ID: fmt.Sprint("h", i), UserID: "bob", Window: w, Tokens: 10, Limit: 1000, FirstReport: first,
				ExpiresAt: T0.Add(time.Minute)}
			r, err := store.Reserve(ctx, h, T0)
			if err != nil || !r.Admitted {
				t.Fatalf("Reserve = %+v, %v", r, err)
			}
			ref := h.Ref(r)
			for _, other := range []string{"mallory", "nobody", ""} {
				wrong := ref
				wrong.UserID = other
				if err := store.Commit(ctx, wrong, 500, T0); !errors.Is(err, freemium.ErrReservationNotFound) {
					t.Errorf("Commit of bob's hold %d as %q = %v, want ErrReservationNotFound", i, other, err)
				}
				if err := store.Cancel(ctx, wrong, T0); !errors.Is(err, freemium.ErrReservationNotFound) {
					t.Errorf("Cancel of bob's hold %d as %q = %v, want ErrReservationNotFound", i, other, err)
				}
			}
			for user, want := range map[string]freemium.State{"bob": {Used: int64(1 + 4*i), Reserved: 10, FirstReportHeld: first},
				"mallory": {Used: 1}} {
				st := load(t, store, user)
				equal(t, fmt.Sprint(user, "'s usage after the refused writes, hold ", i), st.Used, want.Used)
				equal(t, fmt.Sprint(user, "'s holds after the refused writes, hold ", i), st.Reserved, want.Reserved)
				equal(t, fmt.Sprint(user, "'s first report held, hold ", i), st.FirstReportHeld, want.FirstReportHeld)
				equal(t, fmt.Sprint(user, "'s first report used, hold ", i), st.FirstReportUsed, false)
			}
			if err := store.Commit(ctx, ref, 4, T0); err != nil {
				t.Fatal(err)
			}
			st := load(t, store, "bob")
			equal(t, fmt.Sprint("bob's usage after his Commit of hold ", i), st.Used, int64(1+4*(i+1)))
			equal(t, fmt.Sprint("bob's holds after his Commit of hold ", i), st.Reserved, int64(0))
		}
	}},
	{"CommitGivenAWrongFirstReport", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// A HoldRef whose FirstReport is not as Reserve placed the hold
		// does not change what Commit records: the Store's own record of
		// the hold decides.
		store, ctx := ns(t), context.Background()
		w := freemium.Window{Start: T0, End: T0.Add(time.Hour)}
		if err := store.Record(ctx, "u1", w, freemium.Unlimited, 1, "", T0); err != nil {
			t.Fatal(err)
		}
		h := freemium.Hold{ID: "h1", UserID: "u1", Window: w, Tokens: 10, Limit: 100, FirstReport: true,
			ExpiresAt: T0.Add(time.Minute)}
		r, err := store.Reserve(ctx, h, T0)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "admitted as the first report", r.FirstReport, true)
		ref := h.Ref(r)
		ref.FirstReport = false
		if err := store.Commit(ctx, ref, 4, T0); err != nil {
			t.Fatal(err)
		}
		st := load(t, store, "u1")
		equal(t, "usage", st.Used, int64(5))
		equal(t, "holds", st.Reserved, int64(0))
		equal(t, "first report used", st.FirstReportUsed, true)
	}},
	{"ContextCanceled", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		store := ns(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		// A Store that reaches a backend returns the context's error; one
		// that answers from memory may answer. Either way, nothing hangs and
		// nothing is half written.
		if _, err := store.Load(ctx, "u1", T0, hourWindow); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Load with a canceled context = %v, want nil or context.Canceled", err)
		}
		err := store.Record(ctx, "u1", freemium.Window{Start: T0, End: T0.Add(time.Hour)}, freemium.Unlimited, 5, "", T0)
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Record with a canceled context = %v, want nil or context.Canceled", err)
		}
		st, lerr := store.Load(context.Background(), "u1", T0, hourWindow)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if want := map[bool]int64{true: 0, false: 5}[err != nil]; st.Used != want {
			t.Errorf("Used = %d after a Record that returned %v, want %d", st.Used, err, want)
		}
	}},
}
