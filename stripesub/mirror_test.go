package stripesub_test

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

// A plan switch (new subscription on Pro, then the Basic one canceled)
// whose events Stripe delivers out of order records no second conversion:
// the user was never on Free.
func TestMirrorPlanSwitchOutOfOrderIsNotAConversion(t *testing.T) {
	for name, newStore := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			e := newWebhookEnv(t, newStore(t))
			e.mirrorFree("u1")
			e.sendEvent(subscriptionEvent(t, "evt_basic", "customer.subscription.created", webhookT0, "sub_basic", "active", "price_basic"))
			// Switch: sub_pro created at +1m, sub_basic deleted at +2m;
			// the deletion is delivered first.
			e.sendEvent(subscriptionEvent(t, "evt_basic_del", "customer.subscription.deleted", webhookT0.Add(2*time.Minute), "sub_basic", "canceled", "price_basic"))
			e.sendEvent(subscriptionEvent(t, "evt_pro", "customer.subscription.created", webhookT0.Add(time.Minute), "sub_pro", "active", "price_pro"))
			assert.Equal(t, "pro", e.plan("u1"))
			conv, err := e.store.Conversions(context.Background(), webhookT0.Add(-time.Hour), webhookT0.Add(time.Hour))
			require.NoError(t, err)
			assert.Len(t, conv, 1, "basic -> pro is not a conversion: %+v", conv)
		})
	}
}

// blockingChecker: the first call returns what Stripe said before the user
// paid, but only once released; later calls see the new subscription.
type blockingChecker struct {
	mu      sync.Mutex
	calls   int
	started chan struct{}
	release chan struct{}
	after   []freemium.Subscription
}

func (b *blockingChecker) Subscriptions(ctx context.Context, userID string) ([]freemium.Subscription, error) {
	b.mu.Lock()
	b.calls++
	n := b.calls
	b.mu.Unlock()
	if n == 1 {
		close(b.started)
		<-b.release
		return nil, nil // fetched before the checkout completed
	}
	return b.after, nil
}

// Two pulls of the same second (a check's refresh and the checkout page's
// Refresh, or two instances): the one whose fetch began first, and saw no
// subscription, is applied last and must not drop the new subscription.
func TestMirrorSameSecondStalePullDropsSubscription(t *testing.T) {
	for name, newStore := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store := newStore(t)
			clock := freemiumtest.NewClock(webhookT0.Add(100 * time.Millisecond))
			bc := &blockingChecker{started: make(chan struct{}), release: make(chan struct{}),
				after: []freemium.Subscription{{ID: "sub_1", CustomerID: "cus_1", PriceIDs: []string{"price_pro"}, Status: freemium.StatusActive,
					CurrentPeriodStart: webhookT0, CurrentPeriodEnd: webhookT0.AddDate(0, 1, 0)}}}
			g, err := freemium.New(freemium.Config{
				Store: store, Subscriptions: bc, Now: clock.Now,
				Plans:  []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 1000}},
				Logger: slog.New(slog.DiscardHandler),
			})
			require.NoError(t, err)
			done := make(chan error)
			go func() { _, err := g.Check(ctx, "u1", 1); done <- err }() // page check; its refresh fetches first
			<-bc.started
			clock.Set(webhookT0.Add(800 * time.Millisecond))
			require.NoError(t, g.Refresh(ctx, "u1")) // CompleteCheckout's Refresh sees sub_1
			close(bc.release)
			require.NoError(t, <-done)
			u, err := g.Usage(ctx, "u1")
			require.NoError(t, err)
			assert.Equal(t, "pro", u.Plan, "the older fetch must not undo the newer one")
		})
	}
}

// An 'updated active' event and the 'deleted' event of the same second: the
// subscription stays deleted, whatever the order of delivery.
func TestMirrorSameSecondDeleteResurrected(t *testing.T) {
	e := newWebhookEnv(t, freemium.NewMemoryStore())
	e.mirrorFree("u1")
	e.sendEvent(subscriptionEvent(t, "evt_del", "customer.subscription.deleted", webhookT0, "sub_1", "canceled", "price_pro"))
	e.sendEvent(subscriptionEvent(t, "evt_upd", "customer.subscription.updated", webhookT0, "sub_1", "active", "price_pro"))
	assert.Equal(t, "free", e.plan("u1"), "a deleted subscription never comes back")
}
