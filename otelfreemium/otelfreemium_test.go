package otelfreemium_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/otelfreemium"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// observedStore is a MemoryStore the Gate does not recognize as one, so
// that it bounds and observes its calls as it does a database's.
type observedStore struct{ *freemium.MemoryStore }

type telemetry struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	obs    *otelfreemium.Observer
}

func newTelemetry(t *testing.T) *telemetry {
	tel := &telemetry{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	t.Cleanup(func() {
		require.NoError(t, mp.Shutdown(context.Background()))
		require.NoError(t, tp.Shutdown(context.Background()))
	})
	obs, err := otelfreemium.New(otelfreemium.Options{MeterProvider: mp, TracerProvider: tp})
	require.NoError(t, err)
	tel.obs = obs
	return tel
}

// point is one data point of a collected metric: its value (a sum, a
// gauge, or a histogram's count) and its attributes.
type point struct {
	value float64
	attrs attribute.Set
}

func (tel *telemetry) collect(t *testing.T) map[string][]point {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, tel.reader.Collect(context.Background(), &rm))
	out := map[string][]point{}
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, otelfreemium.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{float64(p.Value), p.Attributes})
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{float64(p.Value), p.Attributes})
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{p.Value, p.Attributes})
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{float64(p.Count), p.Attributes})
				}
			default:
				t.Fatalf("metric %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return out
}

// value is the value of the point of the metric with exactly attrs; -1
// when there is none.
func value(points map[string][]point, name string, attrs ...attribute.KeyValue) float64 {
	want := attribute.NewSet(attrs...)
	for _, p := range points[name] {
		if p.attrs.Equals(&want) {
			return p.value
		}
	}
	return -1
}

func kv(k, v string) attribute.KeyValue { return attribute.String(k, v) }

// A scripted month: an allowed report, a blocked one and its upgrade
// prompt delivered, a webhook, a conversion. Each figure is where the
// package doc says.
func TestMetricsOfAScriptedSequence(t *testing.T) {
	tel := newTelemetry(t)
	ctx := context.Background()
	clock := freemiumtest.NewClock(time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC))
	subs := freemiumtest.NewSubscriptions()
	notifier := freemiumtest.NewNotifier()
	g, err := freemium.New(freemium.Config{Store: observedStore{freemium.NewMemoryStore()}, Subscriptions: subs,
		Notifier: notifier, Now: clock.Now, Observer: tel.obs, UpgradeURL: "https://example.com/up",
		Free:   freemium.Plan{FirstReportFree: true, Period: freemium.Lifetime},
		Plans:  []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 10_000, Period: freemium.BillingCycle}},
		TopUps: []freemium.TopUp{{PriceID: "price_pack", Tokens: 10_000}}})
	require.NoError(t, err)
	unregister, err := tel.obs.ObserveOutbox(g)
	require.NoError(t, err)
	defer unregister()

	r, err := g.Reserve(ctx, "ann", 2000) // the free report
	require.NoError(t, err)
	require.True(t, r.OK())
	require.NoError(t, r.Commit(ctx, 1750))
	d, err := g.Check(ctx, "ann", 2000) // blocked: an upgrade prompt is enqueued
	require.NoError(t, err)
	require.False(t, d.Allowed)

	st, err := g.OutboxStats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Pending)
	points := tel.collect(t)
	assert.Equal(t, 1.0, value(points, "freemium.outbox.pending"), "the prompt waits")
	assert.Equal(t, 0.0, value(points, "freemium.outbox.oldest_pending.age"), "made just now")
	clock.Advance(90 * time.Second)
	points = tel.collect(t)
	assert.Equal(t, 90.0, value(points, "freemium.outbox.oldest_pending.age"), "on the Gate's clock")

	sent, err := g.DispatchOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, sent)
	g.Observe(ctx, freemium.Event{Kind: freemium.EventWebhook, Type: "customer.subscription.created", Outcome: "applied"})
	subs.Subscribe("ann", "price_pro", clock.Now(), clock.Now().AddDate(0, 1, 0))
	require.NoError(t, g.Refresh(ctx, "ann")) // the conversion
	for range 2 {
		require.NoError(t, g.ApplyTopUp(ctx, freemium.TopUpPayment{ID: "pi_1", PriceID: "price_pack", UserID: "bea"}))
	}

	points = tel.collect(t)
	assert.Equal(t, 1.0, value(points, "freemium.decisions", kv("freemium.outcome", "allowed"), kv("freemium.plan", "free")))
	assert.Equal(t, 1.0, value(points, "freemium.decisions", kv("freemium.outcome", "blocked"), kv("freemium.plan", "free"),
		kv("freemium.reason", "subscription_required")))
	assert.Equal(t, 1.0, value(points, "freemium.notifications.enqueued", kv("freemium.notification.kind", "upgrade_prompt")))
	assert.Equal(t, 1.0, value(points, "freemium.notifications.delivered", kv("freemium.notification.kind", "upgrade_prompt"),
		kv("freemium.outcome", "sent")))
	assert.Equal(t, 1.0, value(points, "freemium.webhook.events", kv("freemium.webhook.type", "customer.subscription.created"),
		kv("freemium.outcome", "applied")))
	assert.Equal(t, 1.0, value(points, "freemium.conversions", kv("freemium.plan", "pro")))
	assert.Equal(t, 1.0, value(points, "freemium.top_ups", kv("freemium.top_up.price", "price_pack")), "one top-up, however often applied")
	assert.Equal(t, 0.0, value(points, "freemium.outbox.pending"), "sent")
	for _, op := range []string{"reserve", "commit", "check", "dispatch", "store.Reserve", "store.Commit", "store.Enqueue", "store.FinishNotification"} {
		assert.Equal(t, 1.0, value(points, "freemium.operation.duration", kv("freemium.operation", op)), "one %s", op)
	}
	assert.Positive(t, value(points, "freemium.operation.duration", kv("freemium.operation", "refresh")), "the refreshes, by outcome")
}

// Spans nest: a refresh during a Check is the check's child, and the Store
// calls are children of the operation that made them; a failed operation
// has an error status and error.type.
func TestSpansNest(t *testing.T) {
	tel := newTelemetry(t)
	ctx := context.Background()
	store := &failingStore{MemoryStore: freemium.NewMemoryStore()}
	subs := freemiumtest.NewSubscriptions()
	g, err := freemium.New(freemium.Config{Store: store, Subscriptions: subs, Observer: tel.obs, Free: freemium.Plan{Limit: 10},
		Plans: []freemium.Plan{{Name: "pro", PriceIDs: []string{"price_pro"}, Limit: 100}}})
	require.NoError(t, err)
	_, err = g.Check(ctx, "ann", 1) // no mirror yet: the check refreshes it
	require.NoError(t, err)

	spans := tel.spans.Ended()
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
	}
	check, refresh := byName["freemium.check"], byName["freemium.refresh"]
	require.NotNil(t, check, "spans: %v", spans)
	require.NotNil(t, refresh)
	assert.Equal(t, check.SpanContext().SpanID(), refresh.Parent().SpanID(), "the refresh is the check's child")
	assert.Equal(t, check.SpanContext().TraceID(), refresh.SpanContext().TraceID())
	put := byName["freemium.store.PutSubscriptions"]
	require.NotNil(t, put)
	assert.Equal(t, refresh.SpanContext().SpanID(), put.Parent().SpanID(), "the refresh's Store call is its child")
	assert.Contains(t, check.Attributes(), kv("freemium.outcome", "allowed"))
	assert.Contains(t, check.Attributes(), kv("freemium.plan", "free"))

	store.fail = true
	_, err = g.Reserve(ctx, "ann", 1)
	require.Error(t, err)
	var reserve sdktrace.ReadOnlySpan
	for _, s := range tel.spans.Ended() {
		if s.Name() == "freemium.reserve" {
			reserve = s
		}
	}
	require.NotNil(t, reserve)
	assert.Equal(t, "Error", reserve.Status().Code.String())
	assert.Contains(t, reserve.Attributes(), kv("error.type", "_OTHER"))
}

// failingStore is a MemoryStore whose Reserve fails while fail is set.
type failingStore struct {
	*freemium.MemoryStore
	fail bool
}

func (s *failingStore) Reserve(ctx context.Context, h freemium.Hold, now time.Time) (freemium.ReserveResult, error) {
	if s.fail {
		return freemium.ReserveResult{}, errors.New("disk on fire")
	}
	return s.MemoryStore.Reserve(ctx, h, now)
}
