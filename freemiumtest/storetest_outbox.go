package freemiumtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/freemiumkit/freemium"
)

// outboxTests are the cases of notification marks and the outbox.
var outboxTests = []storeTest{
	{"OutboxInspector", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// A Store that shows its outbox counts and lists it by state,
		// oldest first, and retries a failed notification: pending again,
		// due now, attempts from zero, its last error kept.
		store, ctx := ns(t), context.Background()
		oi, ok := store.(freemium.OutboxInspector)
		if !ok {
			t.Skip("the Store is no OutboxInspector")
		}
		stats := func() freemium.OutboxStats {
			st, err := oi.OutboxStats(ctx, T0)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		equal(t, "empty outbox", stats(), freemium.OutboxStats{})
		enqueue(t, store, notification("ntf_a", freemium.UpgradePrompt, "u2", T0.Add(time.Second)), true)
		enqueue(t, store, notification("ntf_b", freemium.UpgradePrompt, "u1", T0.Add(2*time.Second)), true)
		enqueue(t, store, notification("ntf_c", freemium.LimitReached, "u3", T0.Add(3*time.Second)), true)
		enqueue(t, store, notification("ntf_r", freemium.UpgradePrompt, "u4", T0), false) // recorded, never sent
		out := claim(t, store, T0.Add(time.Minute), 10)
		equal(t, "claimed", ids(out), "ntf_a ntf_b ntf_c")
		finish := func(o freemium.Outbound, state freemium.DeliveryState) {
			err := store.FinishNotification(ctx, o.ID, freemium.Outcome{State: state, Error: "provider said no",
				Retry: T0.Add(2 * time.Hour), Claim: o.ClaimedUntil}, T0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
		}
		finish(out[0], freemium.DeliveryFailed)
		finish(out[1], freemium.DeliveryPending) // retried in two hours
		finish(out[2], freemium.DeliverySent)
		equal(t, "stats", stats(), freemium.OutboxStats{Pending: 1, Failed: 1, OldestPending: T0.Add(2 * time.Second)})
		list := func(state freemium.DeliveryState, limit int) string {
			rs, err := oi.OutboxList(ctx, state, limit)
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, r := range rs {
				s = append(s, fmt.Sprintf("%s:%s:%d:%s", r.ID, r.UserID, r.Attempts, r.LastError))
			}
			return strings.Join(s, " ")
		}
		equal(t, "failed", list(freemium.DeliveryFailed, 10), "ntf_a:u2:1:provider said no")
		equal(t, "pending", list(freemium.DeliveryPending, 10), "ntf_b:u1:1:provider said no")
		equal(t, "sent", list(freemium.DeliverySent, 10), "ntf_c:u3:1:provider said no")
		equal(t, "recorded", list(freemium.DeliveryNone, 10), "ntf_r:u4:0:")

		for id, want := range map[string]error{"ntf_missing": freemium.ErrNotificationNotFound, "ntf_b": freemium.ErrNotFailed, "ntf_c": freemium.ErrNotFailed} {
			equal(t, "RetryNotification "+id, errors.Is(oi.RetryNotification(ctx, id, T0.Add(time.Hour)), want), true)
		}
		if err := oi.RetryNotification(ctx, "ntf_a", T0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		equal(t, "retried", list(freemium.DeliveryPending, 1), "ntf_a:u2:0:provider said no")
		equal(t, "not due before the retry", ids(claim(t, store, T0.Add(time.Hour-time.Second), 10)), "")
		equal(t, "due at the retry", ids(claim(t, store, T0.Add(time.Hour), 10)), "ntf_a")
	}},
	{"NotifiedBeforeAnyActivity", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// A user blocked before any activity is prompted once; the mark
		// does not anchor the user: the first activity does.
		store, ctx := ns(t), context.Background()
		n := freemium.Notification{ID: "ntf_1", Kind: freemium.UpgradePrompt, UserID: "u1", CreatedAt: T0,
			Usage: freemium.Usage{Plan: "free"}}
		for i, want := range []bool{true, false} {
			added, err := store.Enqueue(ctx, n, T0, true, T0)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, fmt.Sprint("Enqueue ", i, " added"), added, want)
		}
		st := load(t, store, "u1")
		equal(t, "prompt marked in the window", st.Notified.Has(freemium.UpgradePrompt), true)
		equal(t, "no anchor from a mark", st.Account.Anchor.IsZero(), true)
		every := freemium.Window{Every: time.Hour}
		if err := store.Record(ctx, "u1", every, freemium.Unlimited, 7, "", T0.Add(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		st, err := store.Load(ctx, "u1", T0.Add(20*time.Minute), func(freemium.Account) freemium.Window { return every })
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "anchored at the first activity", st.Account.Anchor, T0.Add(10*time.Minute))
		equal(t, "usage in the window from the anchor", st.Used, int64(7))
	}},
	{"EnqueueOncePerKindUserAndWindow", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// Of racing Enqueues of one kind for one user and window, exactly
		// one adds; another kind, another user or another window adds again.
		store, ctx := ns(t), context.Background()
		var added atomic.Int64
		parallel(20, func(i int) {
			ok, err := store.Enqueue(ctx, notification(fmt.Sprint("ntf_race_", i), freemium.UpgradePrompt, "u1", T0), T0, true, T0)
			if err != nil {
				t.Error(err)
			}
			if ok {
				added.Add(1)
			}
		})
		equal(t, "racing Enqueues that added", added.Load(), int64(1))
		for _, c := range []struct {
			id, user string
			kind     freemium.NotificationKind
			window   time.Time
		}{
			{"ntf_kind", "u1", freemium.UsageWarning, T0},
			{"ntf_user", "u2", freemium.UpgradePrompt, T0},
			{"ntf_window", "u1", freemium.UpgradePrompt, T0.Add(time.Hour)},
		} {
			ok, err := store.Enqueue(ctx, notification(c.id, c.kind, c.user, T0), c.window, true, T0)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, c.id+" added", ok, true)
		}
		st := load(t, store, "u1")
		equal(t, "marks in the window", st.Notified, freemium.NotifiedKinds(0).With(freemium.UpgradePrompt).With(freemium.UsageWarning))
		records := notifications(t, store)
		equal(t, "notifications kept", len(records), 4)
	}},
	{"ClaimsAreLeases", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// A claim takes up to limit due notifications, oldest first, and
		// hides them until its lease ends; an unfinished claim comes back
		// then. A recorded notification (deliver false) is never claimed.
		store := ns(t)
		for i, user := range []string{"u1", "u2", "u3"} {
			enqueue(t, store, notification(fmt.Sprint("ntf_", i), freemium.UpgradePrompt, user, T0.Add(time.Duration(i)*time.Second)), true)
		}
		enqueue(t, store, notification("ntf_recorded", freemium.UpgradePrompt, "u4", T0), false)
		now := T0.Add(time.Minute)
		first := claim(t, store, now, 2)
		equal(t, "first claim", ids(first), "ntf_0 ntf_1")
		equal(t, "first claim's attempts", first[0].Attempts, 0)
		equal(t, "first claim's lease end", first[0].ClaimedUntil, now.Add(time.Minute))
		equal(t, "second claim", ids(claim(t, store, now, 2)), "ntf_2")
		equal(t, "third claim", ids(claim(t, store, now.Add(59*time.Second), 2)), "")
		equal(t, "after the lease", ids(claim(t, store, now.Add(61*time.Second), 10)), "ntf_0 ntf_1 ntf_2")
	}},
	{"ParallelClaimsNeverShare", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// Concurrent claimers, in one process or many, never get the same
		// notification within a lease.
		store, ctx := ns(t), context.Background()
		for i := range 20 {
			enqueue(t, store, notification(fmt.Sprint("ntf_", i), freemium.UpgradePrompt, fmt.Sprint("u", i), T0), true)
		}
		var mu sync.Mutex
		seen := map[string]int{}
		parallel(10, func(int) {
			out, err := store.ClaimNotifications(ctx, T0.Add(time.Minute), 3, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, o := range out {
				seen[o.ID]++
			}
		})
		equal(t, "notifications claimed", len(seen), 20)
		for id, n := range seen {
			equal(t, id+" claimed", n, 1)
		}
	}},
	{"OutcomesOfAttempts", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// Sent, failed and retried outcomes are recorded with the attempt;
		// an outcome under a claim that is no longer the notification's,
		// or for an unknown ID, writes nothing.
		store, ctx := ns(t), context.Background()
		for i := range 3 {
			enqueue(t, store, notification(fmt.Sprint("ntf_", i), freemium.UpgradePrompt, fmt.Sprint("u", i), T0.Add(time.Duration(i)*time.Second)), true)
		}
		now := T0.Add(time.Minute)
		out := claim(t, store, now, 3)
		if len(out) != 3 {
			t.Fatalf("claimed %d, want 3", len(out))
		}
		finish := func(o freemium.Outbound, outcome freemium.Outcome) {
			t.Helper()
			outcome.Claim = o.ClaimedUntil
			if err := store.FinishNotification(ctx, o.ID, outcome, now); err != nil {
				t.Fatal(err)
			}
		}
		finish(out[0], freemium.Outcome{State: freemium.DeliverySent, MessageID: "msg_1"})
		finish(out[1], freemium.Outcome{State: freemium.DeliveryFailed, Error: "422: invalid address"})
		finish(out[2], freemium.Outcome{State: freemium.DeliveryPending, Retry: now.Add(5 * time.Minute), Error: "500"})
		// Stale and unknown outcomes change nothing.
		stale := freemium.Outcome{State: freemium.DeliveryFailed, Error: "stale", Claim: out[2].ClaimedUntil.Add(-time.Second)}
		if err := store.FinishNotification(ctx, out[2].ID, stale, now); err != nil {
			t.Fatal(err)
		}
		if err := store.FinishNotification(ctx, "ntf_unknown", freemium.Outcome{State: freemium.DeliverySent, Claim: now}, now); err != nil {
			t.Fatal(err)
		}
		records := notifications(t, store)
		if len(records) != 3 {
			t.Fatalf("notifications: %d, want 3", len(records))
		}
		sent, failed, retry := records[0], records[1], records[2]
		equal(t, "sent state", sent.State, freemium.DeliverySent)
		equal(t, "sent message ID", sent.MessageID, "msg_1")
		equal(t, "sent at", sent.SentAt, now)
		equal(t, "sent attempts", sent.Attempts, 1)
		equal(t, "failed state", failed.State, freemium.DeliveryFailed)
		equal(t, "failed error", failed.LastError, "422: invalid address")
		equal(t, "retry state", retry.State, freemium.DeliveryPending)
		equal(t, "retry error", retry.LastError, "500")
		equal(t, "retry attempts", retry.Attempts, 1)
		equal(t, "before the retry", ids(claim(t, store, now.Add(4*time.Minute), 10)), "")
		again := claim(t, store, now.Add(5*time.Minute), 10)
		equal(t, "at the retry", ids(again), "ntf_2")
		if len(again) == 1 {
			equal(t, "attempts before the retry", again[0].Attempts, 1)
		}
	}},
	{"NotificationsInRangeOldestFirst", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		store, ctx := ns(t), context.Background()
		for i, at := range []time.Duration{2 * time.Hour, 0, time.Hour, 3 * time.Hour} {
			enqueue(t, store, notification(fmt.Sprint("ntf_", i), freemium.UpgradePrompt, fmt.Sprint("u", i), T0.Add(at)), i%2 == 0)
		}
		rs, err := store.Notifications(ctx, T0, T0.Add(3*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.ID+"="+string(r.State))
		}
		equal(t, "notifications in [T0, T0+3h)", strings.Join(got, " "), "ntf_1=recorded ntf_2=pending ntf_0=pending")
	}},
}

// notification is a notification of kind for user, created at created.
func notification(id string, kind freemium.NotificationKind, user string, created time.Time) freemium.Notification {
	return freemium.Notification{ID: id, Kind: kind, UserID: user, CreatedAt: created,
		Usage: freemium.Usage{Plan: "free", Limit: 0, Percentage: 100}, UpgradeURL: "https://example.com/upgrade"}
}

// enqueue adds n to store's outbox in the window of its creation, at its
// creation; pending when deliver is set.
func enqueue(t *testing.T, store freemium.Store, n freemium.Notification, deliver bool) {
	t.Helper()
	added, err := store.Enqueue(context.Background(), n, n.CreatedAt, deliver, n.CreatedAt)
	if err != nil || !added {
		t.Fatalf("Enqueue(%s) = %v, %v; want added", n.ID, added, err)
	}
}

// claim claims up to limit notifications at now, for a minute.
func claim(t *testing.T, store freemium.Store, now time.Time, limit int) []freemium.Outbound {
	t.Helper()
	out, err := store.ClaimNotifications(context.Background(), now, limit, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ids lists the claimed notifications' IDs, in order.
func ids(out []freemium.Outbound) string {
	var s []string
	for _, o := range out {
		s = append(s, o.ID)
	}
	return strings.Join(s, " ")
}

// notifications lists every notification of store, oldest first.
func notifications(t *testing.T, store freemium.Store) []freemium.NotificationRecord {
	t.Helper()
	rs, err := store.Notifications(context.Background(), T0.Add(-24*time.Hour), T0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}
