package freemium_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
)

// Gate.ApplySubscription is what a webhook handler of any provider calls:
// the subscription reaches the user its customer is linked to, or the user
// its metadata names (who is then linked); a customer of another user, or
// no user at all, writes nothing and says why; older news changes nothing.
func TestApplySubscription(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, store freemium.Store) {
		ctx := context.Background()
		clock := freemiumtest.NewClock(freemiumtest.T0)
		g, err := freemium.New(freemium.Config{
			Store: store, Subscriptions: freemiumtest.NewSubscriptions(), Now: clock.Now,
			Plans:              []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000, Period: freemium.BillingCycle}},
			SubscriptionMaxAge: 24 * time.Hour,
			Logger:             slog.New(slog.DiscardHandler),
		})
		require.NoError(t, err)
		t0 := freemiumtest.T0
		sub := func(status freemium.SubscriptionStatus) freemium.Subscription {
			return freemium.Subscription{ID: "sub_1", CustomerID: "cus_1", PriceIDs: []string{"price_pro"}, Status: status,
				CurrentPeriodStart: t0.Add(-time.Hour), CurrentPeriodEnd: t0.AddDate(0, 1, 0)}
		}

		// No user: neither linked nor named.
		err = g.ApplySubscription(ctx, sub(freemium.StatusActive), "", t0)
		require.ErrorIs(t, err, freemium.ErrInvalidUserID)
		user, err := store.CustomerUser(ctx, "cus_1")
		require.NoError(t, err)
		assert.Empty(t, user, "nothing linked")

		// Named: applied, and the customer linked to the user.
		require.NoError(t, g.ApplySubscription(ctx, sub(freemium.StatusActive), "u1", t0))
		user, err = store.CustomerUser(ctx, "cus_1")
		require.NoError(t, err)
		assert.Equal(t, "u1", user)
		u, err := g.Usage(ctx, "u1")
		require.NoError(t, err)
		assert.Equal(t, "pro", u.Plan)

		// Another user named on u1's customer: refused, nothing written.
		err = g.ApplySubscription(ctx, sub(freemium.StatusCanceled), "u2", t0.Add(time.Minute))
		require.ErrorIs(t, err, freemium.ErrCustomerLinked)
		u, err = g.Usage(ctx, "u1")
		require.NoError(t, err)
		assert.Equal(t, "pro", u.Plan, "the refused news changed nothing")
		u, err = g.Usage(ctx, "u2")
		require.NoError(t, err)
		assert.Equal(t, "free", u.Plan)

		// Older news is ignored; newer news of the linked customer applies,
		// whatever the metadata says (here, nothing).
		require.NoError(t, g.ApplySubscription(ctx, sub(freemium.StatusCanceled), "", t0.Add(-time.Minute)))
		u, err = g.Usage(ctx, "u1")
		require.NoError(t, err)
		assert.Equal(t, "pro", u.Plan, "older than the mirror: ignored")
		require.NoError(t, g.ApplySubscription(ctx, sub(freemium.StatusCanceled), "", t0.Add(time.Minute)))
		u, err = g.Usage(ctx, "u1")
		require.NoError(t, err)
		assert.Equal(t, "free", u.Plan)
	})
}
