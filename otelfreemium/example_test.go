package otelfreemium_test

import (
	"context"
	"fmt"
	"log"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/otelfreemium"
)

// The Observer on the SDK's providers: here a reader the example collects
// itself; in a service, the Prometheus or OTLP exporter.
func ExampleNew() {
	reader := sdkmetric.NewManualReader()
	meterProvider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	tracerProvider := sdktrace.NewTracerProvider()
	defer meterProvider.Shutdown(context.Background())
	defer tracerProvider.Shutdown(context.Background())

	obs, err := otelfreemium.New(otelfreemium.Options{MeterProvider: meterProvider, TracerProvider: tracerProvider})
	if err != nil {
		log.Fatal(err)
	}
	gate, err := freemium.New(freemium.Config{Store: freemium.NewMemoryStore(), Observer: obs})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := obs.ObserveOutbox(gate); err != nil { // the outbox gauges
		log.Fatal(err)
	}

	if _, err := gate.Check(context.Background(), "ann", 100); err != nil { // blocked: Free allows nothing
		log.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "freemium.decisions" {
			outcome, _ := sum.DataPoints[0].Attributes.Value("freemium.outcome")
			reason, _ := sum.DataPoints[0].Attributes.Value("freemium.reason")
			fmt.Println(m.Name, outcome.AsString(), reason.AsString(), sum.DataPoints[0].Value)
		}
	}
	// Output:
	// freemium.decisions blocked subscription_required 1
}
