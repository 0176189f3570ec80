package freemiumtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/freemiumkit/freemium"
)

// mirrorTests are the cases of the subscription mirror: plans from
// subscriptions, their order, customer links and conversions.
var mirrorTests = []storeTest{
	{"UsageWritesNothing", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freeFirstReport, Plans: []freemium.Plan{pro}})
		account := func(user string) freemium.Account {
			st, err := e.store.Load(e.ctx, user, T0, func(freemium.Account) freemium.Window {
				return freemium.Window{Start: T0, End: T0.Add(time.Hour)}
			})
			e.ok(err, "Load")
			return st.Account
		}
		e.subs.Subscribe("payer", "price_pro", T0.Add(-time.Hour), T0.AddDate(0, 1, 0))
		for _, user := range []string{"ghost", "payer"} {
			in, err := e.gate.Inspect(e.ctx, user)
			e.ok(err, "Inspect")
			equal(t, user+" fetched", in.Fetched, true)
			a := account(user)
			equal(t, user+" anchor after Inspect", a.Anchor, time.Time{})
			equal(t, user+" mirror after Inspect", a.Subscriptions.Version, int64(0))
		}
		equal(t, "payer's plan, decided on the fetched subscription", e.usage("payer").Plan, "pro")
		equal(t, "ghost's plan", e.usage("ghost").Plan, "free")
		equal(t, "payer's mirror, still unwritten", account("payer").Subscriptions.Version, int64(0))
		e.refresh("payer")
		in, err := e.gate.Inspect(e.ctx, "payer")
		e.ok(err, "Inspect")
		equal(t, "fetched with a fresh mirror", in.Fetched, false)
		equal(t, "the mirror's subscriptions", len(in.Mirror.Subscriptions), 1)
		equal(t, "the mirror's plan", in.Usage.Plan, "pro")
	}},
	{"BillingCycleFollowsTheSubscription", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 100, Period: freemium.CalendarMonth}, Plans: []freemium.Plan{pro}})
		e.record("u1", 100, "")
		equal(t, "free user at the free limit", e.check("u1", 1).Allowed, false)
		start, end := T0.Add(-time.Hour), T0.Add(-time.Hour).AddDate(0, 1, 0)
		e.subs.Subscribe("u1", "price_pro", start, end)
		e.refresh("u1")
		d := e.check("u1", 1000)
		equal(t, "subscriber allowed in a new window", d.Allowed, true)
		equal(t, "Plan", d.Plan, "pro")
		equal(t, "PeriodStart", d.PeriodStart, start)
		equal(t, "PeriodEnd", d.PeriodEnd, end)
		e.record("u1", 1000, "")
		e.clock.Set(end.Add(time.Hour)) // renewal not reported yet: the period rolls forward
		u := e.usage("u1")
		equal(t, "Used after the period", u.Used, int64(0))
		equal(t, "rolled PeriodStart", u.PeriodStart, end)
		e.subs.Set("u1", freemium.Subscription{Status: freemium.StatusCanceled, PriceIDs: []string{"price_pro"}})
		e.refresh("u1")
		equal(t, "canceled subscriber is back on free", e.usage("u1").Plan, "free")
	}},
	{"PlanResolution", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freeFirstReport, Plans: []freemium.Plan{
			pro,
			{Name: "any", Limit: 50},
		}})
		cases := []struct {
			status freemium.SubscriptionStatus
			price  string
			plan   string
		}{
			{freemium.StatusActive, "price_pro", "pro"},
			{freemium.StatusTrialing, "price_pro", "pro"},
			{freemium.StatusActive, "price_other", "any"},
			{freemium.StatusPastDue, "price_pro", "free"},
			{freemium.StatusCanceled, "price_pro", "free"},
			{freemium.StatusIncomplete, "price_pro", "free"},
			{"", "", "free"},
		}
		for _, c := range cases {
			e.subs.Set("u1", freemium.Subscription{Status: c.status, PriceIDs: []string{c.price}})
			e.refresh("u1")
			equal(t, fmt.Sprintf("plan of %s %s", c.status, c.price), e.usage("u1").Plan, c.plan)
		}
	}},
	{"PlanFromEverySubscriptionAndItem", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		basic := freemium.Plan{Name: "basic", PriceIDs: []string{"price_basic"}, Limit: 100}
		end := T0.Add(time.Hour)
		sub := func(id string, status freemium.SubscriptionStatus, periodEnd time.Time, prices ...string) freemium.Subscription {
			return freemium.Subscription{ID: id, Status: status, PriceIDs: prices, CurrentPeriodStart: periodEnd.AddDate(0, -1, 0), CurrentPeriodEnd: periodEnd}
		}
		active, pastDue := freemium.StatusActive, freemium.StatusPastDue
		cases := []struct {
			name     string
			catchAll bool
			subs     []freemium.Subscription
			plan     string
		}{
			{"an add-on beside the plan's subscription, ending later", false,
				[]freemium.Subscription{sub("addon", active, end.Add(time.Hour), "price_addon"), sub("pro", active, end, "price_pro")}, "pro"},
			{"the plan's price on the second item", false, []freemium.Subscription{sub("pro", active, end, "price_seats", "price_pro")}, "pro"},
			{"two plans: the larger allowance", false,
				[]freemium.Subscription{sub("basic", active, end.Add(time.Hour), "price_basic"), sub("pro", active, end, "price_pro")}, "pro"},
			{"active before past_due", false,
				[]freemium.Subscription{sub("pro", pastDue, end, "price_pro"), sub("basic", active, end, "price_basic")}, "basic"},
			{"past_due in its grace alone", false, []freemium.Subscription{sub("pro", pastDue, T0.Add(-time.Minute), "price_pro")}, "pro"},
			{"past_due past its grace", false, []freemium.Subscription{sub("pro", pastDue, T0.Add(-25*time.Hour), "price_pro")}, "free"},
			{"ended and trialing", false,
				[]freemium.Subscription{sub("pro", freemium.StatusCanceled, end, "price_pro"), sub("basic", freemium.StatusTrialing, end, "price_basic")}, "basic"},
			{"an add-on alone", false, []freemium.Subscription{sub("addon", active, end, "price_addon")}, "free"},
			{"an add-on alone, with a plan for any price", true, []freemium.Subscription{sub("addon", active, end, "price_addon")}, "any"},
			{"an active add-on never displaces a past_due plan", true,
				[]freemium.Subscription{sub("addon", active, end, "price_addon"), sub("pro", pastDue, T0.Add(-time.Minute), "price_pro")}, "pro"},
		}
		for _, c := range cases {
			plans := []freemium.Plan{basic, pro}
			if c.catchAll {
				plans = append(plans, freemium.Plan{Name: "any", Limit: 50})
			}
			e := newEnv(t, ns, freemium.Config{Free: freeFirstReport, Plans: plans, PastDueGrace: 24 * time.Hour})
			e.subs.Set("u1", c.subs...)
			e.refresh("u1")
			equal(t, "plan with "+c.name, e.usage("u1").Plan, c.plan)
		}
	}},
	{"PlanSwitchWithAReservationInFlight", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 100, Period: freemium.CalendarMonth}, Plans: []freemium.Plan{pro}})
		e.record("u1", 10, "")
		inFlight := e.reserve("u1", 50) // in the free plan's November window
		e.subs.Subscribe("u1", "price_pro", T0.Add(-time.Hour), T0.Add(-time.Hour).AddDate(0, 1, 0))
		e.refresh("u1")
		r := e.reserve("u1", 1) // in the pro plan's window
		e.ok(r.Cancel(e.ctx), "Cancel")
		e.subs.Clear("u1") // back on free
		e.refresh("u1")
		e.ok(inFlight.Commit(e.ctx, 50), "Commit into the free window")
		u := e.usage("u1")
		equal(t, "free window's usage", u.Used, int64(60))
		equal(t, "45 more would pass the free limit", e.reserve("u1", 45).OK(), false)
		equal(t, "40 more fit", e.reserve("u1", 40).OK(), true)
	}},
	{"SubscriptionMirrorOrder", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		store, ctx := ns(t), context.Background()
		sub := func(id string, status freemium.SubscriptionStatus) freemium.MirroredSubscription {
			return freemium.MirroredSubscription{
				Subscription: freemium.Subscription{ID: id, CustomerID: "cus_1", PriceIDs: []string{"price_seats", "price_pro"}, Status: status,
					CurrentPeriodStart: T0, CurrentPeriodEnd: T0.AddDate(0, 1, 0), CancelAtPeriodEnd: true},
				PaidPlan: map[bool]string{true: "pro"}[status.Subscribed()],
			}
		}
		event := func(s freemium.MirroredSubscription, asOf time.Time) freemium.SubscriptionUpdate {
			return freemium.SubscriptionUpdate{Subscriptions: []freemium.MirroredSubscription{s}, AsOf: asOf, SyncedAt: T0.Add(time.Minute)}
		}
		pull := func(asOf time.Time, subs ...freemium.MirroredSubscription) freemium.SubscriptionUpdate {
			return freemium.SubscriptionUpdate{Subscriptions: subs, AsOf: asOf, SyncedAt: T0.Add(time.Minute), Pulled: true}
		}
		steps := []struct {
			name   string
			update freemium.SubscriptionUpdate
			wrote  bool
			held   string
		}{
			{"first", event(sub("sub_1", freemium.StatusActive), T0), true, "sub_1=active"},
			{"older", event(sub("sub_1", freemium.StatusCanceled), T0.Add(-time.Second)), false, "sub_1=active"},
			{"same instant, less access", event(sub("sub_1", freemium.StatusIncomplete), T0), false, "sub_1=active"},
			{"another subscription ends", event(sub("sub_2", freemium.StatusCanceled), T0.Add(5*time.Second)), true, "sub_1=active sub_2=canceled"},
			{"a pull", pull(T0.Add(time.Second), sub("sub_1", freemium.StatusPastDue), sub("sub_old", freemium.StatusCanceled)), true,
				"sub_1=past_due sub_2=canceled"}, // sub_2's news is newer than the pull; an ended one the pull lists is dropped
			{"an older pull", pull(T0, sub("sub_1", freemium.StatusActive)), false, "sub_1=past_due sub_2=canceled"},
			{"an event older than the pull about a subscription it did not list", event(sub("sub_old", freemium.StatusActive), T0), false,
				"sub_1=past_due sub_2=canceled"},
			{"same instant as the pull, more access", event(sub("sub_1", freemium.StatusActive), T0.Add(time.Second)), true,
				"sub_1=active sub_2=canceled"},
			{"a subscription created after the pull", event(sub("sub_3", freemium.StatusTrialing), T0.Add(2*time.Second)), true,
				"sub_1=active sub_2=canceled sub_3=trialing"},
			{"a pull that lists nothing", pull(T0.Add(3 * time.Second)), true, "sub_2=canceled"},
			{"a pull after everything", pull(T0.Add(10*time.Second), sub("sub_1", freemium.StatusActive)), true, "sub_1=active"},
		}
		for _, st := range steps {
			wrote, _, err := store.PutSubscriptions(ctx, "u1", st.update, T0)
			if err != nil {
				t.Fatalf("PutSubscriptions %s: %v", st.name, err)
			}
			equal(t, "wrote "+st.name, wrote, st.wrote)
			equal(t, "held after "+st.name, statuses(load(t, store, "u1").Account.Subscriptions), st.held)
		}
		want := sub("sub_1", freemium.StatusActive)
		want.AsOf = T0.Add(10 * time.Second)
		m := load(t, store, "u1").Account.Subscriptions
		if len(m.Subscriptions) != 1 || !reflect.DeepEqual(m.Subscriptions[0], want) {
			t.Errorf("mirror read back = %+v, want one subscription %+v", m.Subscriptions, want)
		}
		equal(t, "PulledAsOf", m.PulledAsOf, T0.Add(10*time.Second))
		equal(t, "SyncedAt", m.SyncedAt, T0.Add(time.Minute))
		equal(t, "a mirror is not activity: no anchor", load(t, store, "u1").Account.Anchor.IsZero(), true)
	}},
	{"ConversionsOncePerChange", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		store, ctx := ns(t), context.Background()
		put := func(user string, u freemium.SubscriptionUpdate) {
			t.Helper()
			if _, _, err := store.PutSubscriptions(ctx, user, u, T0); err != nil {
				t.Errorf("PutSubscriptions: %v", err)
			}
		}
		paid := func(id string, asOf time.Time) freemium.SubscriptionUpdate {
			return freemium.SubscriptionUpdate{Subscriptions: []freemium.MirroredSubscription{{
				Subscription: freemium.Subscription{ID: id, Status: freemium.StatusActive}, PaidPlan: "pro"}},
				PaidPlan: "pro", AsOf: asOf, SyncedAt: T0}
		}
		put("u0", paid("sub_0", T0.Add(-time.Hour)))
		put("u1", freemium.SubscriptionUpdate{AsOf: T0.Add(-time.Minute), SyncedAt: T0, Pulled: true})
		parallel(20, func(i int) { put("u1", paid("sub_1", T0.Add(time.Duration(i)*time.Millisecond))) })
		put("u1", paid("sub_2", T0.Add(30*time.Minute))) // a second paid subscription is no conversion
		put("u1", freemium.SubscriptionUpdate{Subscriptions: []freemium.MirroredSubscription{
			{Subscription: freemium.Subscription{ID: "sub_1", Status: freemium.StatusCanceled}},
			{Subscription: freemium.Subscription{ID: "sub_2", Status: freemium.StatusCanceled}},
		}, AsOf: T0.Add(time.Hour), SyncedAt: T0, Pulled: true})
		put("u1", paid("sub_3", T0.Add(2*time.Hour)))
		conv, err := store.Conversions(ctx, T0, T0.Add(3*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "conversions: none for u0, mirrored paid from the start; 20 racing writes of one change, then a second change", len(conv), 2)
		if len(conv) == 2 {
			equal(t, "second conversion", conv[1], freemium.Conversion{UserID: "u1", Plan: "pro", At: T0.Add(2 * time.Hour)})
		}
		conv, err = store.Conversions(ctx, T0.Add(time.Hour), T0.Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "conversions in [T0+1h, T0+2h)", len(conv), 0)
	}},
	{"CustomerLinks", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		store, ctx := ns(t), context.Background()
		synced := freemium.SubscriptionUpdate{AsOf: T0, SyncedAt: T0, Pulled: true}
		if _, _, err := store.PutSubscriptions(ctx, "u1", synced, T0); err != nil {
			t.Fatal(err)
		}
		if err := store.LinkCustomer(ctx, "u1", "cus_1", T0); err != nil {
			t.Fatal(err)
		}
		a := load(t, store, "u1").Account
		equal(t, "linked customer", a.CustomerID, "cus_1")
		equal(t, "linking marks the mirror for refresh", a.Subscriptions.SyncedAt.IsZero(), true)
		equal(t, "and keeps its order", a.Subscriptions.PulledAsOf, T0)
		user, err := store.CustomerUser(ctx, "cus_1")
		equal(t, "CustomerUser", user, "u1")
		equal(t, "CustomerUser error", err, nil)
		if err := store.LinkCustomer(ctx, "u1", "cus_1", T0); err != nil {
			t.Errorf("linking again: %v", err)
		}
		if err := store.LinkCustomer(ctx, "u2", "cus_1", T0); !errors.Is(err, freemium.ErrCustomerLinked) {
			t.Errorf("linking u1's customer to u2 = %v, want ErrCustomerLinked", err)
		}
		equal(t, "u2 has no customer", load(t, store, "u2").Account.CustomerID, "")
		user, _ = store.CustomerUser(ctx, "cus_unknown")
		equal(t, "unknown customer", user, "")
	}},
	{"HoldOnAMirrorThatMoved", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// A hold decided on a mirror (Hold.Mirror) is placed only while the
		// mirror has that Version; every write of the mirror (a pull, an
		// event, a customer link) moves it, and a hold on the old one
		// writes nothing.
		store, ctx := ns(t), context.Background()
		version := func() int64 {
			t.Helper()
			return load(t, store, "u1").Account.Subscriptions.Version
		}
		equal(t, "version of no mirror", version(), int64(0))
		sub := freemium.MirroredSubscription{Subscription: freemium.Subscription{ID: "sub_1", CustomerID: "cus_1",
			PriceIDs: []string{"price_pro"}, Status: freemium.StatusActive, CurrentPeriodStart: T0, CurrentPeriodEnd: T0.AddDate(0, 1, 0)}}
		put := func(u freemium.SubscriptionUpdate) {
			t.Helper()
			if _, _, err := store.PutSubscriptions(ctx, "u1", u, T0); err != nil {
				t.Fatal(err)
			}
		}
		put(freemium.SubscriptionUpdate{Subscriptions: []freemium.MirroredSubscription{sub}, Pulled: true, AsOf: T0, SyncedAt: T0})
		v1 := version()
		if v1 == 0 {
			t.Fatal("a pull left the mirror's Version 0")
		}
		hold := func(id string, mirror int64) freemium.ReserveResult {
			t.Helper()
			r, err := store.Reserve(ctx, freemium.Hold{ID: id, UserID: "u1", Window: hourWindow(freemium.Account{}), Tokens: 10,
				Limit: 100, ExpiresAt: T0.Add(time.Minute), Mirror: mirror}, T0)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		r := hold("h1", v1)
		equal(t, "hold on the current mirror admitted", r.Admitted, true)
		equal(t, "hold on the current mirror moved", r.MirrorMoved, false)

		if err := store.LinkCustomer(ctx, "u1", "cus_1", T0); err != nil {
			t.Fatal(err)
		}
		v2 := version()
		equal(t, "a link moves the mirror", v2 != v1, true)
		r = hold("h2", v1)
		equal(t, "hold on the old mirror moved", r.MirrorMoved, true)
		equal(t, "hold on the old mirror admitted", r.Admitted, false)
		equal(t, "reserved after the refused hold", load(t, store, "u1").Reserved, int64(10))

		sub.Status = freemium.StatusCanceled
		put(freemium.SubscriptionUpdate{Subscriptions: []freemium.MirroredSubscription{sub}, AsOf: T0.Add(time.Second), SyncedAt: T0})
		v3 := version()
		equal(t, "an event moves the mirror", v3 != v2 && v3 != v1, true)
		equal(t, "hold on the link's mirror moved", hold("h3", v2).MirrorMoved, true)
		equal(t, "hold on the event's mirror admitted", hold("h4", v3).Admitted, true)
		equal(t, "hold without a mirror admitted", hold("h5", 0).Admitted, true)
		equal(t, "reserved", load(t, store, "u1").Reserved, int64(30))

		// A user without a mirror: any version but 0 has moved, and the
		// refused hold does not anchor the user.
		r, err := store.Reserve(ctx, freemium.Hold{ID: "h6", UserID: "u2", Window: freemium.Window{Every: time.Hour}, Tokens: 1,
			Limit: 100, ExpiresAt: T0.Add(time.Minute), Mirror: 7}, T0)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "hold of a user without a mirror moved", r.MirrorMoved, true)
		equal(t, "not anchored by the refused hold", load(t, store, "u2").Account.Anchor.IsZero(), true)
	}},
	{"ReserveSeesAPlanChangedByAnotherGate", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// A Gate that read a user on Pro, whose subscription another Gate
		// (another instance) then saw canceled, decides the next Reserve
		// on Free: what it remembered never outlives the Store's mirror.
		e := newEnv(t, ns, freemium.Config{Free: freemium.Plan{Limit: 0}, Plans: []freemium.Plan{pro}})
		sub := e.subs.Subscribe("u1", "price_pro", T0.Add(-time.Hour), T0.AddDate(0, 1, 0))
		e.refresh("u1")
		equal(t, "plan read by the first gate", e.check("u1", 10).Plan, "pro")
		r := e.reserve("u1", 10)
		equal(t, "reserve on pro", r.OK(), true)
		e.ok(r.Commit(e.ctx, 10), "Commit")

		other := e.newGate(freemium.Config{Store: e.store, Now: e.clock.Now, Subscriptions: e.subs,
			Free: freemium.Plan{Limit: 0}, Plans: []freemium.Plan{pro}})
		sub.Status = freemium.StatusCanceled
		e.ok(other.ApplySubscription(e.ctx, sub, "u1", T0.Add(time.Second)), "ApplySubscription on the other gate")
		e.subs.Set("u1", sub) // what a refresh would now find too
		r = e.reserve("u1", 10)
		equal(t, "reserve after the cancel", r.OK(), false)
		equal(t, "plan after the cancel", r.Decision().Plan, "free")
	}},
}
