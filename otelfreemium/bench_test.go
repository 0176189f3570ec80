package otelfreemium_test

import (
	"context"
	"testing"

	mnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tnoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/otelfreemium"
)

// benchGates are Gates on one MemoryStore: without an Observer, with
// otelfreemium on the no-op providers, and on the SDK (a meter provider
// with a reader, a tracer provider that samples every span).
func benchGates(b *testing.B, store freemium.Store) map[string]*freemium.Gate {
	gate := func(obs freemium.Observer) *freemium.Gate {
		g, err := freemium.New(freemium.Config{Store: store, Free: freemium.Plan{Limit: freemium.MaxTokens}, Observer: obs})
		if err != nil {
			b.Fatal(err)
		}
		return g
	}
	noop, err := otelfreemium.New(otelfreemium.Options{MeterProvider: mnoop.NewMeterProvider(), TracerProvider: tnoop.NewTracerProvider()})
	if err != nil {
		b.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() {
		mp.Shutdown(context.Background())
		tp.Shutdown(context.Background())
	})
	sdk, err := otelfreemium.New(otelfreemium.Options{MeterProvider: mp, TracerProvider: tp})
	if err != nil {
		b.Fatal(err)
	}
	return map[string]*freemium.Gate{"none": gate(nil), "noop": gate(noop), "sdk": gate(sdk)}
}

// BenchmarkObservedCheck measures a MemoryStore Check with the Observer
// against one without, alternated in the same loop; "alone" runs each
// by itself for its allocations.
func BenchmarkObservedCheck(b *testing.B) {
	benchObservedCheck(b, freemium.NewMemoryStore(), true)
}

// BenchmarkObservedCheckPostgres is BenchmarkObservedCheck on Postgres,
// where the Store's calls are observed too.
func BenchmarkObservedCheckPostgres(b *testing.B) {
	benchObservedCheck(b, testenv.PostgresStore(b), false)
}

func benchObservedCheck(b *testing.B, store freemium.Store, alone bool) {
	ctx := context.Background()
	gates := benchGates(b, store)
	check := func(g *freemium.Gate) func(int) error {
		return func(int) error {
			_, err := g.Check(ctx, "u1", 10)
			return err
		}
	}
	for _, name := range []string{"noop", "sdk"} {
		b.Run(name+"/vs-NoObserver", func(b *testing.B) {
			testenv.Measure(b, check(gates["none"]), check(gates[name]))
		})
	}
	if !alone {
		return
	}
	for _, name := range []string{"none", "noop", "sdk"} {
		b.Run("alone/"+name, func(b *testing.B) {
			b.ReportAllocs()
			g := gates[name]
			for b.Loop() {
				if _, err := g.Check(ctx, "u1", 10); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
