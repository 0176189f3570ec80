package main

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/otelfreemium"
)

// telemetry is the gate's metrics, exported for Prometheus to scrape at
// GET /metrics: an OpenTelemetry meter provider whose reader is the
// Prometheus exporter, on a registry of the app's own.
type telemetry struct {
	observer *otelfreemium.Observer
	provider *sdkmetric.MeterProvider
	handler  http.Handler
}

func newTelemetry() (*telemetry, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	obs, err := otelfreemium.New(otelfreemium.Options{MeterProvider: mp})
	if err != nil {
		return nil, err
	}
	return &telemetry{observer: obs, provider: mp, handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}, nil
}

// observe adds the outbox gauges of g.
func (t *telemetry) observe(g *freemium.Gate) error {
	_, err := t.observer.ObserveOutbox(g)
	return err
}

func (t *telemetry) close(ctx context.Context) error { return t.provider.Shutdown(ctx) }
