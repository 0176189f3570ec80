package freemium_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
)

var soakOps = flag.Int("soak.ops", 40000, "operations per soak phase (each phase is one usage window); about two minutes under -race on 2 cores")

// TestSoak drives 1,000 users from 50 goroutines through a mix of Check,
// Reserve+Commit, Reserve+Cancel, abandoned reservations, Record with
// repeated idempotency keys and plan changes, over several windows of the
// settable clock, on each store. It keeps its own ledger and checks, per
// user and window: recorded usage equals the commits plus the distinct
// records; no window of a user who only reserves is past its limit; no user
// got the free first report twice. A tenth of the users also get grants
// and buy top-ups, with keys and payments that repeat and race: per user,
// nothing is granted twice (the ledger's grants are the distinct ones),
// nothing is spent twice (the ledger's credit entries sum to the credits
// left), a window's spends never pass what its usage went past the
// allowance, and a user who only reserves never goes past the allowance
// and what the grants paid. Notifications go to a provider that is
// down for the first half and back for the second, delivered by two Gates
// (two instances) dispatching while the workers run: at the end, no
// notification of a kind was made twice for a user and window, and every
// one was delivered exactly once.
//
// The clock moves only between phases, so the test knows each operation's
// window. -soak.ops sets the operations per phase (longer runs: -soak.ops
// 100000).
func TestSoak(t *testing.T) {
	for name, newStore := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			soak(t, newStore(t), *soakOps)
		})
	}
}

const (
	soakUsers   = 1000
	soakWorkers = 50
	soakPhases  = 4
	soakWindow  = 24 * time.Hour
	soakTTL     = time.Hour
)

type soakKey struct {
	user   string
	window time.Time
}

// soakLedger is what the test knows was spent, by user and window.
type soakLedger struct {
	mu        sync.Mutex
	used      map[soakKey]int64
	keys      map[string]bool // user/key pairs recorded, granted and paid
	firsts    map[string]int  // first reports granted, by user
	recorders map[string]bool
	granters  map[string]bool  // users who get grants and buy top-ups
	granted   map[string]int64 // tokens granted, by user, each key once
}

func (l *soakLedger) add(user string, window time.Time, tokens int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.used[soakKey{user, window}] += tokens
}

func soak(t *testing.T, store freemium.Store, opsPerPhase int) {
	ctx := context.Background()
	start := time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
	clock := freemiumtest.NewClock(start)
	subs := freemiumtest.NewSubscriptions()
	free := freemium.Plan{Name: "free", FirstReportFree: true, Limit: 150, Period: freemium.Every(soakWindow)}
	pro := freemium.Plan{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 5000, Period: freemium.Every(soakWindow)}
	provider := &soakNotifier{Notifier: freemiumtest.NewNotifier(), ok: map[string]int{}}
	provider.SetError(errors.New("provider down"))
	cfg := freemium.Config{Store: store, Subscriptions: subs, Free: free, Plans: []freemium.Plan{pro}, TopUps: []freemium.TopUp{soakPack},
		ReservationTTL: soakTTL, Now: clock.Now, Notifier: provider, Logger: slog.New(slog.DiscardHandler),
		// The provider is down for two windows; like freemiumtest.Notifier,
		// it keeps idempotency keys for good, so retries may come that late.
		Delivery: freemium.DeliveryConfig{IdempotencyWindow: 365 * 24 * time.Hour}}
	gate, err := freemium.New(cfg)
	require.NoError(t, err)
	other, err := freemium.New(cfg) // a second instance, delivering too
	require.NoError(t, err)
	limits := map[string]int64{"free": free.Limit, "pro": pro.Limit}

	users := make([]string, soakUsers)
	for i := range users {
		users[i] = fmt.Sprintf("soak-%04d", i)
	}
	ledger := &soakLedger{used: map[soakKey]int64{}, keys: map[string]bool{}, firsts: map[string]int{}, recorders: map[string]bool{},
		granters: map[string]bool{}, granted: map[string]int64{}}
	for _, u := range users[:soakUsers/5] {
		ledger.recorders[u] = true // a fifth of the users also record without reservations
	}
	for i := 7; i < soakUsers; i += 10 {
		ledger.granters[users[i]] = true // a tenth get grants and buy top-ups, some of them recorders too
	}

	// Every user's windows start at its first activity: all users are made
	// active at the start, so that every window boundary is a phase boundary.
	for _, u := range users {
		r, err := gate.Reserve(ctx, u, 0)
		require.NoError(t, err)
		require.NoError(t, r.Cancel(ctx))
	}

	for phase := range soakPhases {
		window := start.Add(time.Duration(phase) * soakWindow)
		clock.Set(window.Add(time.Hour))
		if phase == soakPhases/2 {
			provider.SetError(nil) // the provider is back
		}
		// Plan changes between phases: a few users subscribe, a few cancel.
		for i := phase; i < soakUsers; i += 37 {
			if phase%2 == 0 {
				subs.Subscribe(users[i], "price_pro", time.Time{}, time.Time{})
			} else {
				subs.Clear(users[i])
			}
		}
		var wg sync.WaitGroup
		working := make(chan struct{})
		var dispatchers sync.WaitGroup
		for _, g := range []*freemium.Gate{gate, other} {
			dispatchers.Add(1)
			go func() {
				defer dispatchers.Done()
				for {
					if _, err := g.DispatchOnce(ctx); err != nil {
						t.Error(err)
						return
					}
					select {
					case <-working:
						return
					default:
					}
				}
			}()
		}
		for w := range soakWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(phase), uint64(w)))
				for range opsPerPhase / soakWorkers {
					if err := soakOp(ctx, gate, ledger, users[rng.IntN(soakUsers)], phase, rng); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(working)
		dispatchers.Wait()
		if t.Failed() {
			return
		}
		// Let the abandoned holds of this phase expire before the next one.
		clock.Set(window.Add(soakWindow - time.Minute))
		require.Greater(t, soakWindow-time.Minute-time.Hour, soakTTL)
		for _, u := range users {
			got, err := gate.Usage(ctx, u)
			require.NoError(t, err)
			assert.Equal(t, int64(0), got.Reserved, "holds of %s left after phase %d", u, phase)
		}
	}

	// Check every user's every window against the ledger.
	used := map[soakKey]int64{}
	for phase := range soakPhases {
		window := start.Add(time.Duration(phase) * soakWindow)
		clock.Set(window.Add(time.Hour))
		for _, u := range users {
			got, err := gate.Usage(ctx, u)
			require.NoError(t, err)
			require.Equal(t, window, got.PeriodStart, "window of %s in phase %d", u, phase)
			want := ledger.used[soakKey{u, window}]
			assert.Equal(t, want, got.Used, "usage of %s in phase %d", u, phase)
			if !ledger.recorders[u] && !ledger.granters[u] {
				assert.LessOrEqual(t, got.Used, max(limits["pro"], limits["free"]), "usage of %s in phase %d", u, phase)
			}
			used[soakKey{u, window}] = got.Used
		}
	}
	// The credits: every grant once, every spend once, spends within what
	// usage went past the allowance.
	end := start.Add(soakPhases * soakWindow)
	clock.Set(end)
	var grants, spends, expiries int
	for u := range ledger.granters {
		entries, err := gate.Ledger(ctx, u, start, end)
		require.NoError(t, err)
		var granted, credits int64
		spent := map[time.Time]int64{}
		for _, e := range entries {
			switch e.Kind {
			case freemium.LedgerGrant:
				granted += e.Tokens
				grants++
			case freemium.LedgerSpend:
				spent[start.Add(e.At.Sub(start)/soakWindow*soakWindow)] -= e.Tokens
				spends++
			case freemium.LedgerExpire:
				expiries++
			}
			credits += e.Tokens
		}
		assert.Equal(t, ledger.granted[u], granted, "tokens granted to %s: each key and payment once", u)
		got, err := gate.Usage(ctx, u)
		require.NoError(t, err)
		assert.Equal(t, got.Credits, credits, "the credit entries of %s sum to the credits left", u)
		for phase := range soakPhases {
			w := soakKey{u, start.Add(time.Duration(phase) * soakWindow)}
			assert.LessOrEqual(t, spent[w.window], max(0, used[w]-limits["free"]), "spends of %s in phase %d", u, phase)
			if !ledger.recorders[u] {
				assert.LessOrEqual(t, used[w], limits["pro"]+spent[w.window], "usage of %s in phase %d past the allowance and the grants", u, phase)
			}
		}
	}
	t.Logf("credits: %d grants, %d spends, %d expiries in the ledgers", grants, spends, expiries)
	for u, n := range ledger.firsts {
		assert.LessOrEqual(t, n, 1, "first reports granted to %s", u)
	}

	// Deliver what is left: retries come due as the clock moves on.
	for range 10 {
		clock.Advance(time.Hour)
		for {
			n, err := gate.DispatchOnce(ctx)
			require.NoError(t, err)
			if n == 0 {
				break
			}
		}
	}
	records, err := store.Notifications(ctx, start, start.Add(30*soakWindow))
	require.NoError(t, err)
	require.NotEmpty(t, records)
	made := map[string]bool{}
	for _, r := range records {
		key := fmt.Sprint(r.UserID, r.Kind, r.Usage.PeriodStart)
		assert.False(t, made[key], "two %s for %s in the window from %v", r.Kind, r.UserID, r.Usage.PeriodStart)
		made[key] = true
		assert.Equal(t, freemium.DeliverySent, r.State, "notification %s", r.ID)
		assert.Equal(t, 1, provider.delivered(r.ID), "deliveries of %s", r.ID)
	}
	assert.Len(t, provider.Sent(), len(records), "nothing delivered that the outbox does not hold")
	t.Logf("%d notifications, each delivered once; %d calls to the provider", len(records), provider.Calls())
}

// soakNotifier counts the successful deliveries of each notification.
type soakNotifier struct {
	*freemiumtest.Notifier
	mu sync.Mutex
	ok map[string]int
}

func (s *soakNotifier) Notify(ctx context.Context, n freemium.Notification) error {
	err := s.Notifier.Notify(ctx, n)
	if err == nil {
		s.mu.Lock()
		s.ok[n.ID]++
		s.mu.Unlock()
	}
	return err
}

func (s *soakNotifier) delivered(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok[id]
}

// soakPack is the soak's top-up.
var soakPack = freemium.TopUp{PriceID: "price_pack", Tokens: 300}

// soakOp does one random operation for user in phase and books what it
// spent.
func soakOp(ctx context.Context, gate *freemium.Gate, l *soakLedger, user string, phase int, rng *rand.Rand) error {
	tokens := int64(rng.IntN(120))
	if l.granters[user] && rng.IntN(20) == 0 {
		return soakCredit(ctx, gate, l, user, phase, rng)
	}
	switch op := rng.IntN(10); {
	case op < 2:
		_, err := gate.Check(ctx, user, tokens)
		return err
	case op < 7: // reserve, then commit (more or less than estimated), cancel or abandon
		r, err := gate.Reserve(ctx, user, tokens)
		if err != nil || !r.OK() {
			return err
		}
		d := r.Decision()
		room := d.Limit
		if d.Credits > 0 {
			room = max(d.Limit, d.Used) + d.Credits
		}
		if d.Used+d.Reserved+tokens > room && !d.FirstReport {
			return fmt.Errorf("%s admitted past its limit and credits: %+v, %d more", user, d.Usage, tokens)
		}
		switch rng.IntN(4) {
		case 0:
			return r.Cancel(ctx)
		case 1:
			return nil // abandoned: it expires
		default:
			// Users who only reserve spend exactly their estimate, so that
			// their windows can be checked against the limit; the others
			// spend more or less.
			actual := tokens
			if l.recorders[user] || d.FirstReport {
				actual = int64(rng.IntN(150))
			}
			if err := r.Commit(ctx, actual); err != nil {
				return err
			}
			if err := r.Commit(ctx, actual); err != nil { // a retried commit counts once
				return err
			}
			l.add(user, d.PeriodStart, actual)
			if d.FirstReport {
				l.mu.Lock()
				l.firsts[user]++
				l.mu.Unlock()
			}
			return nil
		}
	default: // record, with keys that repeat
		if !l.recorders[user] {
			_, err := gate.Check(ctx, user, tokens)
			return err
		}
		n := rng.IntN(8)
		key := fmt.Sprintf("job-%d", n)
		// Racing Records of one key: whichever reaches the store first
		// counts, so all of them carry the same tokens.
		tokens := int64(10 + n*7)
		u, err := gate.Usage(ctx, user)
		if err != nil {
			return err
		}
		l.mu.Lock()
		seen := l.keys[user+"/"+key]
		l.keys[user+"/"+key] = true
		l.mu.Unlock()
		if err := gate.Record(ctx, user, tokens, key); err != nil {
			return err
		}
		if !seen {
			l.add(user, u.PeriodStart, tokens)
		}
		return nil
	}
}

// soakCredit grants the user tokens, or buys a top-up, with keys and
// payments that repeat within the phase (half the grants expire two hours
// into it), and books each key once.
func soakCredit(ctx context.Context, gate *freemium.Gate, l *soakLedger, user string, phase int, rng *rand.Rand) error {
	n := rng.IntN(3)
	key, tokens := fmt.Sprintf("gift-%d-%d", phase, n), int64(50*(n+1))
	var err error
	if rng.IntN(2) == 0 {
		o := freemium.GrantOptions{Key: key, Reason: "soak"}
		if n%2 == 1 {
			u, uerr := gate.Usage(ctx, user)
			if uerr != nil {
				return uerr
			}
			o.ExpiresAt = u.PeriodStart.Add(3 * time.Hour) // the clock is at an hour in
		}
		err = gate.Grant(ctx, user, tokens, o)
	} else {
		key, tokens = fmt.Sprintf("pi-%s-%d-%d", user, phase, n), soakPack.Tokens
		err = gate.ApplyTopUp(ctx, freemium.TopUpPayment{ID: key, PriceID: soakPack.PriceID, UserID: user})
	}
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.keys[user+"/"+key] {
		l.keys[user+"/"+key] = true
		l.granted[user] += tokens
	}
	return nil
}
