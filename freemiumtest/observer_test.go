package freemiumtest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

func TestObserverRecords(t *testing.T) {
	obs := freemiumtest.NewObserver()
	g, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Observer: obs,
		Free: freemium.Plan{FirstReportFree: true}})
	require.NoError(t, err)
	ctx := context.Background()
	r, err := g.Reserve(ctx, "ann", 100)
	require.NoError(t, err)
	require.NoError(t, r.Commit(ctx, 90))
	_, err = g.Check(ctx, "ann", 100)
	require.NoError(t, err)

	var ops []freemium.Op
	for _, e := range obs.Ended() {
		ops = append(ops, e.Op)
	}
	assert.Equal(t, []freemium.Op{freemium.OpReserve, freemium.OpCommit, freemium.OpCheck}, ops)
	ds := obs.Decisions()
	require.Len(t, ds, 2)
	assert.True(t, ds[0].Allowed)
	assert.Equal(t, freemium.ReasonSubscriptionRequired, ds[1].Reason)
	assert.Equal(t, []freemium.Event{{Kind: freemium.EventNotificationEnqueued, Notification: freemium.UpgradePrompt}}, obs.Events())
}
