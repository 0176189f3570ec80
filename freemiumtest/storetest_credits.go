package freemiumtest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/freemiumkit/freemium"
)

// Plans of the credit cases: Free without a free first report, with no
// allowance or with 100 tokens.
var (
	free0   = freemium.Plan{Name: "free", Limit: 0, Period: freemium.Lifetime}
	free100 = freemium.Plan{Name: "free", Limit: 100, Period: freemium.Lifetime}
)

// creditTests are the cases of credits: grants, their spending order and
// expiry, revocations, adjustments and the ledger.
var creditTests = []storeTest{
	{"GrantsAdmitExactlyWhatFits", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		for _, plan := range []freemium.Plan{free0, freeFirstReport} {
			t.Run(fmt.Sprintf("first report %v", plan.FirstReportFree), func(t *testing.T) {
				e := newEnv(t, ns, freemium.Config{Free: plan})
				e.grant("u1", 1000, freemium.GrantOptions{Key: "bonus"})
				var admitted atomic.Int64
				rs := make([]*freemium.Reservation, 200)
				parallel(200, func(i int) {
					r, err := e.gate.Reserve(e.ctx, "u1", 10)
					if err != nil {
						t.Errorf("Reserve: %v", err)
						return
					}
					if r.OK() {
						admitted.Add(1)
						rs[i] = r
					}
				})
				equal(t, "admitted of 200 reserves of 10 on a grant of 1,000", admitted.Load(), int64(100))
				parallel(200, func(i int) {
					if rs[i] != nil {
						if err := rs[i].Commit(e.ctx, 10); err != nil {
							t.Errorf("Commit: %v", err)
						}
					}
				})
				u := e.usage("u1")
				equal(t, "Used", u.Used, int64(1000))
				want := int64(0)
				if plan.FirstReportFree {
					want = 10 // the free report spent none
				}
				equal(t, "Credits left", u.Credits, want)
				equal(t, "ledger sums to the credits", e.ledgerCredits("u1"), u.Credits)
				equal(t, "Reserve of the credits left", e.reserve("u1", want+1).OK(), false)
			})
		}
	}},
	{"GrantKeyGrantsOnce", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: free0})
		parallel(20, func(int) {
			if err := e.gate.Grant(e.ctx, "u1", 500, freemium.GrantOptions{Key: "cs_1", Reason: "top-up"}); err != nil {
				t.Errorf("Grant: %v", err)
			}
		})
		e.grant("u1", 500, freemium.GrantOptions{Key: "cs_1"})
		equal(t, "Credits after 21 grants with one key", e.usage("u1").Credits, int64(500))
		entries := e.ledger("u1")
		equal(t, "ledger entries", len(entries), 1)
		if len(entries) == 1 {
			want := freemium.LedgerEntry{At: T0, Kind: freemium.LedgerGrant, Tokens: 500, Key: "cs_1", Reason: "top-up"}
			equal(t, "the grant's entry", entries[0], want)
		}
		e.grant("u2", 500, freemium.GrantOptions{Key: "cs_1"}) // keys are per user
		equal(t, "another user's grant with the key", e.usage("u2").Credits, int64(500))
		e.grant("u1", 7, freemium.GrantOptions{}) // no key: a grant each call
		e.grant("u1", 7, freemium.GrantOptions{})
		equal(t, "Credits after two grants without a key", e.usage("u1").Credits, int64(514))
	}},
	{"GrantsSpentAfterTheAllowanceEarliestExpiryFirst", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: free100})
		e.grant("u1", 50, freemium.GrantOptions{Key: "late", ExpiresAt: T0.Add(2 * time.Hour)})
		e.grant("u1", 50, freemium.GrantOptions{Key: "never"})
		e.grant("u1", 50, freemium.GrantOptions{Key: "soon", ExpiresAt: T0.Add(time.Hour)})
		u := e.usage("u1")
		equal(t, "Credits", u.Credits, int64(150))
		equal(t, "CreditsExpireAt", u.CreditsExpireAt, T0.Add(time.Hour))
		equal(t, "Remaining: the allowance and the credits", u.Remaining, int64(250))

		e.record("u1", 80, "") // within the allowance: no spend
		equal(t, "Credits within the allowance", e.usage("u1").Credits, int64(150))
		e.record("u1", 40, "") // 20 past it
		r := e.reserve("u1", 60)
		equal(t, "Reserve on credits OK", r.OK(), true)
		e.ok(r.Commit(e.ctx, 60), "Commit")
		u = e.usage("u1")
		equal(t, "Used", u.Used, int64(180))
		equal(t, "Credits after spending 80", u.Credits, int64(70))
		equal(t, "CreditsExpireAt after the soonest is spent", u.CreditsExpireAt, T0.Add(2*time.Hour))
		var spent []string
		for _, en := range e.ledger("u1") {
			if en.Kind == freemium.LedgerSpend {
				spent = append(spent, fmt.Sprintf("%s%d", en.Key, en.Tokens))
			}
		}
		equal(t, "spends", fmt.Sprint(spent), "[soon-20 soon-30 late-30]")

		e.clock.Set(T0.Add(2 * time.Hour)) // late's 20 expire
		u = e.usage("u1")
		equal(t, "Credits after an expiry", u.Credits, int64(50))
		equal(t, "CreditsExpireAt with none expiring", u.CreditsExpireAt.IsZero(), true)
		equal(t, "Reserve past the credits left", e.reserve("u1", 51).OK(), false)
		entries := e.ledger("u1")
		last := entries[len(entries)-1]
		equal(t, "expiry entry", last, freemium.LedgerEntry{At: T0.Add(2 * time.Hour), Kind: freemium.LedgerExpire, Tokens: -20,
			Key: "late", Reason: freemium.ExpireReason})
		equal(t, "ledger sums to the credits", e.ledgerCredits("u1"), u.Credits)
	}},
	{"ExpiredGrantStopsAdmitting", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: free0})
		e.grant("u1", 100, freemium.GrantOptions{Key: "g", ExpiresAt: T0.Add(time.Minute)})
		equal(t, "Check on a live grant", e.check("u1", 100).Allowed, true)
		r := e.reserve("u1", 40)
		equal(t, "Reserve on a live grant", r.OK(), true)
		e.ok(r.Commit(e.ctx, 40), "Commit")
		e.clock.Set(T0.Add(time.Minute))
		d := e.check("u1", 1)
		equal(t, "Check after the expiry", d.Allowed, false)
		equal(t, "Credits after the expiry", d.Credits, int64(0))
		equal(t, "Reserve after the expiry", e.reserve("u1", 1).OK(), false)
	}},
	{"CommitPastTheCreditsSpendsWhatIsLeft", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: free0})
		e.grant("u1", 10, freemium.GrantOptions{Key: "g"})
		r := e.reserve("u1", 10)
		e.ok(r.Commit(e.ctx, 30), "Commit of more than estimated")
		u := e.usage("u1")
		equal(t, "Used", u.Used, int64(30))
		equal(t, "Credits", u.Credits, int64(0))
		equal(t, "ledger sums to the credits", e.ledgerCredits("u1"), int64(0))
	}},
	{"FirstReportTakesNoCredits", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: freeFirstReport})
		r := e.reserve("u1", 1500)
		equal(t, "first report", r.Decision().FirstReport, true)
		e.ok(r.Commit(e.ctx, 1500), "Commit of the first report")
		e.grant("u1", 1000, freemium.GrantOptions{Key: "pack"})
		d := e.check("u1", 1000)
		equal(t, "Check of all the credits after the free report", d.Allowed, true)
		equal(t, "Remaining", d.Remaining, int64(1000))
		r = e.reserve("u1", 1000)
		equal(t, "Reserve of all the credits", r.OK(), true)
		e.ok(r.Commit(e.ctx, 1000), "Commit")
		d = e.check("u1", 1)
		equal(t, "Check with nothing left", d.Allowed, false)
		equal(t, "Reason with nothing left", d.Reason, freemium.ReasonSubscriptionRequired)
	}},
	{"RevokeTakesBackWhatIsLeft", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: free0})
		e.grant("u1", 100, freemium.GrantOptions{Key: "pi_1"})
		e.grant("u1", 100, freemium.GrantOptions{Key: "other"})
		e.record("u1", 30, "") // spends from one of them: same expiry, so the oldest
		n, err := e.gate.RevokeGrant(e.ctx, "u1", "pi_1", "refund")
		e.ok(err, "RevokeGrant")
		equal(t, "revoked", n, int64(70))
		n, err = e.gate.RevokeGrant(e.ctx, "u1", "pi_1", "refund")
		e.ok(err, "second RevokeGrant")
		equal(t, "revoked again", n, int64(0))
		if _, err := e.gate.RevokeGrant(e.ctx, "u1", "nope", "refund"); !errors.Is(err, freemium.ErrGrantNotFound) {
			t.Errorf("RevokeGrant of an unknown key = %v, want ErrGrantNotFound", err)
		}
		if _, err := e.gate.RevokeGrant(e.ctx, "u2", "pi_1", "refund"); !errors.Is(err, freemium.ErrGrantNotFound) {
			t.Errorf("RevokeGrant of another user's key = %v, want ErrGrantNotFound", err)
		}
		u := e.usage("u1")
		equal(t, "Credits", u.Credits, int64(100))
		equal(t, "ledger sums to the credits", e.ledgerCredits("u1"), u.Credits)
	}},
	{"AdjustOncePerKeyNeverBelowZero", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: free100})
		e.record("u1", 50, "")
		e.ok(e.gate.Adjust(e.ctx, "u1", -20, "report-7", "report failed"), "Adjust")
		e.ok(e.gate.Adjust(e.ctx, "u1", -20, "report-7", "report failed"), "Adjust again")
		equal(t, "Used after an adjustment made twice", e.usage("u1").Used, int64(30))
		parallel(10, func(int) {
			if err := e.gate.Adjust(e.ctx, "u1", -100, "wipe", "goodwill"); err != nil {
				t.Errorf("Adjust: %v", err)
			}
		})
		equal(t, "Used never below zero", e.usage("u1").Used, int64(0))
		e.ok(e.gate.Adjust(e.ctx, "u1", 15, "missed", "unrecorded work"), "Adjust up")
		equal(t, "Used after an adjustment up", e.usage("u1").Used, int64(15))
		var changes []int64
		for _, en := range e.ledger("u1") {
			equal(t, "kind", en.Kind, freemium.LedgerAdjust)
			changes = append(changes, en.Tokens)
		}
		equal(t, "adjustments in the ledger", fmt.Sprint(changes), "[-20 -30 15]")
		if err := e.gate.Adjust(e.ctx, "u1", -5, "", "no key"); !errors.Is(err, freemium.ErrInvalidIdempotencyKey) {
			t.Errorf("Adjust without a key = %v, want ErrInvalidIdempotencyKey", err)
		}
		if err := e.gate.Adjust(e.ctx, "u1", 0, "k", ""); !errors.Is(err, freemium.ErrInvalidTokens) {
			t.Errorf("Adjust of 0 = %v, want ErrInvalidTokens", err)
		}
		equal(t, "ledger entries after bad adjustments", len(e.ledger("u1")), 3)
	}},
	{"InvalidGrantWritesNothing", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		e := newEnv(t, ns, freemium.Config{Free: free0})
		for _, c := range []struct {
			tokens int64
			o      freemium.GrantOptions
		}{
			{0, freemium.GrantOptions{}},
			{-5, freemium.GrantOptions{}},
			{freemium.MaxTokens + 1, freemium.GrantOptions{}},
			{10, freemium.GrantOptions{ExpiresAt: T0}},
			{10, freemium.GrantOptions{ExpiresAt: T0.Add(-time.Hour)}},
			{10, freemium.GrantOptions{Key: "bad\x00key"}},
			{10, freemium.GrantOptions{Reason: "bad\nreason"}},
			{10, freemium.GrantOptions{Key: "topup:pi_1"}}, // the top-ups' keys
		} {
			if err := e.gate.Grant(e.ctx, "u1", c.tokens, c.o); err == nil {
				t.Errorf("Grant(%d, %+v) = nil, want an error", c.tokens, c.o)
			}
		}
		if err := e.gate.Grant(e.ctx, "", 10, freemium.GrantOptions{}); !errors.Is(err, freemium.ErrInvalidUserID) {
			t.Errorf("Grant to an empty user = %v, want ErrInvalidUserID", err)
		}
		equal(t, "Credits", e.usage("u1").Credits, int64(0))
		equal(t, "ledger entries", len(e.ledger("u1")), 0)
	}},
	{"LedgerExplainsAMonth", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		// The allowance used, a top-up bought, part spent, an adjustment,
		// a refund, an expiry: the credit entries sum to the credits, and
		// usage is the allowance's part plus the spends and adjustments.
		e := newEnv(t, ns, freemium.Config{Free: free100})
		e.record("u1", 100, "")
		e.grant("u1", 1000, freemium.GrantOptions{Key: "pack-1", Reason: "top-up"})
		e.grant("u1", 300, freemium.GrantOptions{Key: "bonus", ExpiresAt: T0.Add(24 * time.Hour), Reason: "launch bonus"})
		e.clock.Advance(time.Hour)
		r := e.reserve("u1", 400)
		e.ok(r.Commit(e.ctx, 400), "Commit") // 300 from bonus, 100 from pack-1
		e.ok(e.gate.Adjust(e.ctx, "u1", -50, "r-9", "report failed"), "Adjust")
		e.record("u1", 60, "") // past the allowance still: 60 from pack-1
		e.clock.Advance(time.Hour)
		n, err := e.gate.RevokeGrant(e.ctx, "u1", "pack-1", "refund")
		e.ok(err, "RevokeGrant")
		equal(t, "revoked", n, int64(840))
		e.grant("u1", 200, freemium.GrantOptions{Key: "bonus-2", ExpiresAt: T0.Add(3 * time.Hour)})
		e.clock.Set(T0.Add(4 * time.Hour))
		u := e.usage("u1")
		entries := e.ledger("u1")
		var credits, spent, adjusted int64
		for _, en := range entries {
			switch en.Kind {
			case freemium.LedgerAdjust:
				adjusted += en.Tokens
			case freemium.LedgerSpend:
				spent += en.Tokens
				credits += en.Tokens
			default:
				credits += en.Tokens
			}
		}
		equal(t, "credit entries sum to Credits", credits, u.Credits)
		equal(t, "Credits", u.Credits, int64(0))
		equal(t, "Used = allowance + spends + adjustments", u.Used, min(u.Used, free100.Limit)-spent+adjusted)
		equal(t, "entries", len(entries), 9) // 3 grants, 3 spends, 1 adjust, 1 revoke, 1 expiry
		for i := 1; i < len(entries); i++ {
			if entries[i].At.Before(entries[i-1].At) {
				t.Errorf("entry %d (%v) is before entry %d (%v)", i, entries[i].At, i-1, entries[i-1].At)
			}
		}
		equal(t, "entries in the first hour", len(e.ledgerIn("u1", T0, T0.Add(time.Hour))), 2)
	}},
	{"TopUpsGrantOnceAndCount", func(t *testing.T, ns func(*testing.T) freemium.Store) {
		pack := freemium.TopUp{PriceID: "price_pack", Tokens: 10_000, Validity: 30 * 24 * time.Hour}
		e := newEnv(t, ns, freemium.Config{Free: free0, TopUps: []freemium.TopUp{pack}})
		pay := freemium.TopUpPayment{ID: "pi_1", PriceID: "price_pack", UserID: "u1", CustomerID: "cus_1"}
		parallel(5, func(int) {
			if err := e.gate.ApplyTopUp(e.ctx, pay); err != nil {
				t.Errorf("ApplyTopUp: %v", err)
			}
		})
		u := e.usage("u1")
		equal(t, "Credits after a payment applied five times", u.Credits, int64(10_000))
		equal(t, "CreditsExpireAt: the pack's validity", u.CreditsExpireAt, T0.Add(30*24*time.Hour))
		user, err := e.store.CustomerUser(e.ctx, "cus_1")
		e.ok(err, "CustomerUser")
		equal(t, "the payment's customer is linked", user, "u1")
		// Another payment of the same customer, naming nobody: the linked user's.
		e.ok(e.gate.ApplyTopUp(e.ctx, freemium.TopUpPayment{ID: "pi_2", PriceID: "price_pack", CustomerID: "cus_1"}), "ApplyTopUp")
		equal(t, "Credits after a second pack", e.usage("u1").Credits, int64(20_000))
		if err := e.gate.ApplyTopUp(e.ctx, freemium.TopUpPayment{ID: "pi_3", PriceID: "price_pack", UserID: "u2", CustomerID: "cus_1"}); !errors.Is(err, freemium.ErrCustomerLinked) {
			t.Errorf("ApplyTopUp naming another user than the customer's = %v, want ErrCustomerLinked", err)
		}
		if err := e.gate.ApplyTopUp(e.ctx, freemium.TopUpPayment{ID: "pi_4", PriceID: "price_other", UserID: "u1"}); !errors.Is(err, freemium.ErrUnknownTopUp) {
			t.Errorf("ApplyTopUp of an unknown price = %v, want ErrUnknownTopUp", err)
		}
		e.record("u1", 4000, "")
		n, err := e.gate.RefundTopUp(e.ctx, freemium.TopUpPayment{ID: "pi_1", CustomerID: "cus_1"})
		e.ok(err, "RefundTopUp")
		equal(t, "refunded: what is left of the pack spent first", n, int64(6000))
		equal(t, "Credits after the refund", e.usage("u1").Credits, int64(10_000))
		// A refund before its payment's grant: the grant, when it comes, grants nothing.
		n, err = e.gate.RefundTopUp(e.ctx, freemium.TopUpPayment{ID: "pi_9", UserID: "u1"})
		e.ok(err, "RefundTopUp before the grant")
		equal(t, "refunded before the grant", n, int64(0))
		e.ok(e.gate.ApplyTopUp(e.ctx, freemium.TopUpPayment{ID: "pi_9", PriceID: "price_pack", UserID: "u1"}), "ApplyTopUp after its refund")
		equal(t, "Credits after a refunded payment's grant", e.usage("u1").Credits, int64(10_000))

		e.clock.Advance(time.Hour)
		topUps, err := e.store.TopUps(e.ctx, T0, T0.Add(time.Hour))
		e.ok(err, "TopUps")
		equal(t, "top-ups listed", len(topUps), 2)
		if len(topUps) == 2 {
			equal(t, "top-up", topUps[0], freemium.TopUpRecord{UserID: "u1", PriceID: "price_pack", Tokens: 10_000, At: T0})
		}
		f, err := e.gate.Funnel(e.ctx, T0, T0.Add(time.Hour))
		e.ok(err, "Funnel")
		equal(t, "Funnel.TopUps", f.TopUps, 2)
		equal(t, "Funnel.TopUpTokens", f.TopUpTokens, int64(20_000))
	}},
}

func (e *env) grant(user string, tokens int64, o freemium.GrantOptions) {
	e.t.Helper()
	if err := e.gate.Grant(e.ctx, user, tokens, o); err != nil {
		e.t.Fatalf("Grant(%q, %d, %+v): %v", user, tokens, o, err)
	}
}

func (e *env) ledger(user string) []freemium.LedgerEntry {
	e.t.Helper()
	return e.ledgerIn(user, T0.Add(-time.Hour), e.clock.Now().Add(time.Hour))
}

func (e *env) ledgerIn(user string, from, to time.Time) []freemium.LedgerEntry {
	e.t.Helper()
	out, err := e.gate.Ledger(e.ctx, user, from, to)
	if err != nil {
		e.t.Fatalf("Ledger(%q): %v", user, err)
	}
	return out
}

// ledgerCredits sums the user's credit entries.
func (e *env) ledgerCredits(user string) int64 {
	e.t.Helper()
	var sum int64
	for _, en := range e.ledger(user) {
		if en.Kind != freemium.LedgerAdjust {
			sum += en.Tokens
		}
	}
	return sum
}
