package freemium_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
)

// notices returns the kinds of the notifications store holds, with the
// usage each was made with.
func notices(t *testing.T, store freemium.Store) []freemium.Notification {
	t.Helper()
	rs, err := store.Notifications(context.Background(), outboxT0.Add(-time.Hour), outboxT0.AddDate(1, 0, 0))
	require.NoError(t, err)
	ns := make([]freemium.Notification, len(rs))
	for i, r := range rs {
		ns[i] = r.Notification
	}
	return ns
}

// LimitReached goes when usage leaves no room, not when holds or one large
// estimate do: ten parallel holds of 100 fill a limit of 1,000 and an
// eleventh is refused, a request larger than what is left is refused, and
// neither sends anything nor spends the period's mark; the refusal once
// 1,000 are used sends the one LimitReached, saying 1,000 of 1,000.
func TestLimitReachedOnlyWhenUsageLeavesNoRoom(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		ctx := context.Background()
		clock := freemiumtest.NewClock(outboxT0)
		subs := freemiumtest.NewSubscriptions()
		subs.Subscribe("payer", "price_pro", outboxT0.Add(-time.Hour), outboxT0.Add(-time.Hour).AddDate(0, 1, 0))
		g, err := freemium.New(freemium.Config{Store: store, Subscriptions: subs, Notifier: freemiumtest.NewNotifier(),
			Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
			Plans: []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000}}})
		require.NoError(t, err)

		holds := make([]*freemium.Reservation, 10)
		var wg sync.WaitGroup
		for i := range holds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := g.Reserve(ctx, "payer", 100)
				assert.NoError(t, err)
				holds[i] = r
			}()
		}
		wg.Wait()
		for _, r := range holds {
			require.True(t, r.OK())
		}
		r, err := g.Reserve(ctx, "payer", 100)
		require.NoError(t, err)
		require.False(t, r.OK(), "the holds fill the limit")
		d, err := g.Check(ctx, "payer", 100)
		require.NoError(t, err)
		require.False(t, d.Allowed)
		assert.Empty(t, notices(t, store), "a refusal by holds sends nothing")

		for _, r := range holds[:9] {
			require.NoError(t, r.Commit(ctx, 100))
		}
		require.NoError(t, holds[9].Cancel(ctx))
		r, err = g.Reserve(ctx, "payer", 200)
		require.NoError(t, err)
		require.False(t, r.OK(), "200 is more than the 100 left")
		assert.Empty(t, notices(t, store), "a refusal by a large estimate sends nothing")

		require.NoError(t, g.Record(ctx, "payer", 100, ""))
		for range 3 {
			r, err = g.Reserve(ctx, "payer", 1)
			require.NoError(t, err)
			require.False(t, r.OK())
		}
		ns := notices(t, store)
		require.Len(t, ns, 1, "the mark was kept for the true one, which goes once")
		assert.Equal(t, freemium.LimitReached, ns[0].Kind)
		assert.Equal(t, int64(1000), ns[0].Usage.Used)
		assert.Equal(t, int64(1000), ns[0].Usage.Limit)
		assert.Equal(t, 100.0, ns[0].Usage.Percentage)
	})
}

// On a Free plan whose free first report is held but not used, a second
// request is refused without a prompt: the held report may yet be canceled
// and free again. Once it is used, the next refusal prompts, once. A Free
// plan that allows nothing prompts at the first refusal.
func TestUpgradePromptOnlyWhenTheFreeReportIsUsed(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		ctx := context.Background()
		clock := freemiumtest.NewClock(outboxT0)
		g, err := freemium.New(freemium.Config{Store: store, Notifier: freemiumtest.NewNotifier(),
			Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
			Free: freemium.Plan{FirstReportFree: true, Period: freemium.Lifetime}})
		require.NoError(t, err)
		reserve := func(user string) *freemium.Reservation {
			t.Helper()
			r, err := g.Reserve(ctx, user, 500)
			require.NoError(t, err)
			return r
		}

		first := reserve("u1")
		require.True(t, first.OK())
		require.False(t, reserve("u1").OK(), "the first report is held")
		assert.Empty(t, notices(t, store), "a held first report is not the end of the free plan")
		require.NoError(t, first.Cancel(ctx))
		first = reserve("u1")
		require.True(t, first.OK(), "the canceled first report is free again")
		require.NoError(t, first.Commit(ctx, 500))
		require.False(t, reserve("u1").OK())
		require.False(t, reserve("u1").OK())
		ns := notices(t, store)
		require.Len(t, ns, 1)
		assert.Equal(t, freemium.UpgradePrompt, ns[0].Kind)
		assert.True(t, ns[0].Usage.FirstReportUsed)

		nothing, err := freemium.New(freemium.Config{Store: store, Notifier: freemiumtest.NewNotifier(),
			Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		d, err := nothing.Check(ctx, "u2", 1)
		require.NoError(t, err)
		require.False(t, d.Allowed)
		assert.Len(t, notices(t, store), 2, "a Free plan that allows nothing prompts at once")
	})
}
