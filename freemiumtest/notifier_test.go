package freemiumtest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

func note(id string) freemium.Notification {
	return freemium.Notification{ID: id, Kind: freemium.UpgradePrompt, UserID: "u-" + id}
}

func ids(ns []freemium.Notification) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

func TestNotifierDeliversEachIDOnce(t *testing.T) {
	ctx := context.Background()
	f := freemiumtest.NewNotifier()
	assert.Empty(t, f.Sent())
	require.NoError(t, f.Notify(ctx, note("a")))
	require.NoError(t, f.Notify(ctx, note("b")))
	require.NoError(t, f.Notify(ctx, note("a")), "a repeated ID succeeds")
	assert.Equal(t, []string{"a", "b"}, ids(f.Sent()), "a repeated ID is not delivered twice")
	assert.Equal(t, 3, f.Calls())
	assert.Equal(t, "u-a", f.Sent()[0].UserID)

	sent := f.Sent()
	sent[0].ID = "changed"
	assert.Equal(t, "a", f.Sent()[0].ID, "Sent returns a copy")
}

func TestNotifierFailNext(t *testing.T) {
	ctx := context.Background()
	f := freemiumtest.NewNotifier()
	down := errors.New("provider down")
	f.FailNext(2, down)
	assert.ErrorIs(t, f.Notify(ctx, note("a")), down)
	assert.ErrorIs(t, f.Notify(ctx, note("a")), down)
	assert.NoError(t, f.Notify(ctx, note("a")), "the third call succeeds")
	assert.Equal(t, []string{"a"}, ids(f.Sent()))
	assert.Equal(t, 3, f.Calls())

	permanent := &freemium.NotifyError{Status: 422, Permanent: true, Err: errors.New("invalid")}
	f.FailNext(1, permanent)
	var ne *freemium.NotifyError
	require.ErrorAs(t, f.Notify(ctx, note("b")), &ne)
	assert.True(t, ne.Permanent)

	f.FailNext(5, down)
	f.FailNext(0, nil)
	assert.NoError(t, f.Notify(ctx, note("c")), "FailNext(0, nil) clears")
	assert.Equal(t, []string{"a", "c"}, ids(f.Sent()))
}

func TestNotifierSetError(t *testing.T) {
	ctx := context.Background()
	f := freemiumtest.NewNotifier()
	down := errors.New("provider down")
	f.SetError(down)
	for range 10 {
		assert.ErrorIs(t, f.Notify(ctx, note("a")), down)
	}
	assert.Empty(t, f.Sent())
	f.SetError(nil)
	assert.NoError(t, f.Notify(ctx, note("a")))
	assert.Equal(t, []string{"a"}, ids(f.Sent()))
	assert.Equal(t, 11, f.Calls())
}

func TestNotifierCanceledContext(t *testing.T) {
	f := freemiumtest.NewNotifier()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, f.Notify(ctx, note("a")), context.Canceled)
	assert.Empty(t, f.Sent())
}

func TestNotifierParallel(t *testing.T) {
	ctx := context.Background()
	f := freemiumtest.NewNotifier()
	f.FailNext(7, errors.New("flaky"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for i := range 100 {
		wg.Go(func() {
			if err := f.Notify(ctx, note(fmt.Sprint(i%10))); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
			f.Sent()
		})
	}
	wg.Wait()
	assert.Equal(t, 7, failed)
	assert.Equal(t, 100, f.Calls())
	assert.ElementsMatch(t, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, ids(f.Sent()))
}
