package freemium_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
)

// Benchmarks report ratios against a baseline measured in the same loop,
// interleaved with the operation, so that both see the same machine.
// ns/op is the operation alone; base-ns/op the baseline; x-base their ratio.

var benchPlans = freemium.Config{
	Free:  freemium.Plan{FirstReportFree: true, Limit: 0, Period: freemium.Lifetime},
	Plans: []freemium.Plan{{Name: "pro", Limit: freemium.MaxTokens, Period: freemium.CalendarMonth}},
}

func benchGate(b *testing.B, store freemium.Store) *freemium.Gate {
	b.Helper()
	cfg := benchPlans
	cfg.Store = store
	g, err := freemium.New(cfg)
	require.NoError(b, err)
	return g
}

func BenchmarkMemoryCheck(b *testing.B) {
	ctx := context.Background()
	g := benchGate(b, freemium.NewMemoryStore())
	require.NoError(b, g.MarkFirstReportUsed(ctx, "u1"))
	b.ReportAllocs()
	for b.Loop() {
		d, err := g.Check(ctx, "u1", 100)
		if err != nil || d.Allowed {
			b.Fatal(d, err) // u1 used its first report on the free plan: blocked
		}
	}
}

func BenchmarkMemoryCheckParallel(b *testing.B) {
	ctx := context.Background()
	g := benchGate(b, freemium.NewMemoryStore())
	users := make([]string, 1024)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
		require.NoError(b, g.Record(ctx, users[i], 10, ""))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(users))
		for pb.Next() {
			if _, err := g.Check(ctx, users[i%len(users)], 100); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkMemoryRecord(b *testing.B) {
	ctx := context.Background()
	g := benchGate(b, freemium.NewMemoryStore())
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Record(ctx, "u1", 90, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryReserveCommit(b *testing.B) {
	ctx := context.Background()
	subs := freemiumtest.NewSubscriptions()
	cfg := benchPlans
	cfg.Store, cfg.Subscriptions = freemium.NewMemoryStore(), subs
	g, err := freemium.New(cfg)
	require.NoError(b, err)
	subs.Subscribe("u1", "price_pro", time.Time{}, time.Time{})
	b.ReportAllocs()
	for b.Loop() {
		r, err := g.Reserve(ctx, "u1", 100)
		if err != nil || !r.OK() {
			b.Fatal(r.Decision(), err)
		}
		if err := r.Commit(ctx, 90); err != nil {
			b.Fatal(err)
		}
	}
}
