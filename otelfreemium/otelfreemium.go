package otelfreemium

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/freemiumkit/freemium"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/freemiumkit/freemium"

// Options configures New.
type Options struct {
	// MeterProvider makes the meter. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// TracerProvider makes the tracer. Default otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

// Observer records a Gate's operations and events as OpenTelemetry
// metrics and spans. Set it in freemium.Config.Observer. It is safe for
// simultaneous use.
type Observer struct {
	tracer trace.Tracer
	meter  metric.Meter

	decisions   metric.Int64Counter
	duration    metric.Float64Histogram
	enqueued    metric.Int64Counter
	delivered   metric.Int64Counter
	webhooks    metric.Int64Counter
	conversions metric.Int64Counter
	topUps      metric.Int64Counter

	// Span names and attribute sets made once: in New for the known
	// operations (read without a lock), then once per new combination.
	known         map[freemium.Op]opInfo
	decisionAttrs sync.Map // decisionKey -> []metric.AddOption
	durationAttrs sync.Map // durationKey -> []metric.RecordOption, for ops not in known
	eventAttrs    sync.Map // freemium.Event -> []metric.AddOption
	spanNames     sync.Map // freemium.Op -> string, for ops not in known
}

// opInfo is what End and Start need of a known operation.
type opInfo struct {
	span     string
	duration map[string][]metric.RecordOption // by error.type
}

// knownOps are the operations a Gate reports.
var knownOps = []freemium.Op{freemium.OpCheck, freemium.OpReserve, freemium.OpCommit, freemium.OpCancel,
	freemium.OpRecord, freemium.OpUsage, freemium.OpRefresh, freemium.OpApplySubscription, freemium.OpDispatch,
	freemium.OpStore + "Load", freemium.OpStore + "Reserve", freemium.OpStore + "Commit", freemium.OpStore + "Cancel",
	freemium.OpStore + "Record", freemium.OpStore + "MarkFirstReportUsed", freemium.OpStore + "PutSubscriptions",
	freemium.OpStore + "LinkCustomer", freemium.OpStore + "CustomerUser", freemium.OpStore + "Conversions",
	freemium.OpStore + "Enqueue", freemium.OpStore + "FinishNotification", freemium.OpStore + "Notifications"}

// errorTypes are the values errorType returns.
var errorTypes = []string{"", "canceled", "timeout", "subscription_unavailable", "invalid_input",
	"reservation_not_found", "customer_linked", "_OTHER"}

var _ freemium.Observer = (*Observer)(nil)

// durationBounds are the histogram's buckets, in seconds: from a
// MemoryStore's tenth of a millisecond to a Store call's timeout.
var durationBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// New returns an Observer that records to the providers of opts.
func New(opts Options) (*Observer, error) {
	mp, tp := opts.MeterProvider, opts.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	o := &Observer{tracer: tp.Tracer(ScopeName), meter: mp.Meter(ScopeName)}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := o.meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	o.decisions = counter("freemium.decisions", "{decision}",
		"Decisions of Check and Reserve, by outcome (allowed or blocked), reason and plan.")
	o.enqueued = counter("freemium.notifications.enqueued", "{notification}",
		"Notifications put in the outbox, by kind.")
	o.delivered = counter("freemium.notifications.delivered", "{attempt}",
		"Delivery attempts, by kind and outcome (sent, retry or failed).")
	o.webhooks = counter("freemium.webhook.events", "{event}",
		"Billing provider webhook deliveries, by event type and outcome (applied, ignored, rejected or error).")
	o.conversions = counter("freemium.conversions", "{conversion}",
		"Users who moved from Free to a paid plan, by plan.")
	o.topUps = counter("freemium.top_ups", "{top-up}",
		"Packs of tokens bought (Config.TopUps), by price.")
	var err error
	o.duration, err = o.meter.Float64Histogram("freemium.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of the Gate's operations and of its Store calls, by operation and error.type."),
		metric.WithExplicitBucketBoundaries(durationBounds...))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	o.known = map[freemium.Op]opInfo{}
	for _, op := range knownOps {
		info := opInfo{span: "freemium." + string(op), duration: map[string][]metric.RecordOption{}}
		for _, et := range errorTypes {
			info.duration[et] = durationOption(op, et)
		}
		o.known[op] = info
	}
	return o, nil
}

// spanOptions are the options of every span: made once, since a
// variadic call through an interface would allocate them each time.
var spanOptions = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}

// Start starts the operation's span.
func (o *Observer) Start(ctx context.Context, op freemium.Op) context.Context {
	ctx, _ = o.tracer.Start(ctx, o.spanName(op), spanOptions...)
	return ctx
}

// End records the operation's duration, and its decision for Check and
// Reserve, and ends its span.
func (o *Observer) End(ctx context.Context, op freemium.Op, r freemium.OpResult) {
	errType := errorType(r.Err)
	o.duration.Record(ctx, r.Duration.Seconds(), o.durationOptions(op, errType)...)
	if r.Decided {
		o.decisions.Add(ctx, 1, o.decisionOptions(&r.Decision)...)
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		span.End()
		return
	}
	if d := &r.Decision; r.Decided {
		span.SetAttributes(attribute.String("freemium.outcome", outcome(d.Allowed)),
			attribute.String("freemium.plan", d.Plan))
		if d.Reason != "" {
			span.SetAttributes(attribute.String("freemium.reason", string(d.Reason)))
		}
	}
	if r.Err != nil {
		span.SetAttributes(attribute.String("error.type", errType))
		span.SetStatus(codes.Error, r.Err.Error())
	}
	span.End()
}

// Event counts the event, and adds it to the current span.
func (o *Observer) Event(ctx context.Context, e freemium.Event) {
	opts := o.eventOptions(e)
	switch e.Kind {
	case freemium.EventNotificationEnqueued:
		o.enqueued.Add(ctx, 1, opts...)
	case freemium.EventNotificationDelivered:
		o.delivered.Add(ctx, 1, opts...)
	case freemium.EventWebhook:
		o.webhooks.Add(ctx, 1, opts...)
	case freemium.EventConversion:
		o.conversions.Add(ctx, 1, opts...)
	case freemium.EventTopUp:
		o.topUps.Add(ctx, 1, opts...)
	default:
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("freemium."+string(e.Kind), trace.WithAttributes(eventAttributes(e)...))
	}
}

// ObserveOutbox reports the outbox of g as two gauges,
// freemium.outbox.pending and freemium.outbox.oldest_pending.age, read
// with Gate.OutboxStats at each collection (g's Store must be a
// freemium.OutboxInspector). A collection whose read fails reports
// nothing. Call the returned function to stop.
func (o *Observer) ObserveOutbox(g *freemium.Gate) (unregister func() error, err error) {
	pending, err := o.meter.Int64ObservableGauge("freemium.outbox.pending", metric.WithUnit("{notification}"),
		metric.WithDescription("Notifications waiting in the outbox to be sent, due or not."))
	if err != nil {
		return nil, err
	}
	age, err := o.meter.Float64ObservableGauge("freemium.outbox.oldest_pending.age", metric.WithUnit("s"),
		metric.WithDescription("How long the oldest pending notification has waited; 0 when none is pending."))
	if err != nil {
		return nil, err
	}
	reg, err := o.meter.RegisterCallback(func(ctx context.Context, obs metric.Observer) error {
		st, err := g.OutboxStats(ctx)
		if err != nil {
			return nil // nothing to report: the gauges are absent from this collection
		}
		obs.ObserveInt64(pending, int64(st.Pending))
		obs.ObserveFloat64(age, st.OldestPendingAge.Seconds())
		return nil
	}, pending, age)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}

// errorType is an error's error.type: "" for none.
func errorType(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, freemium.ErrSubscriptionUnavailable):
		return "subscription_unavailable"
	case errors.Is(err, freemium.ErrInvalidUserID), errors.Is(err, freemium.ErrInvalidTokens),
		errors.Is(err, freemium.ErrInvalidIdempotencyKey):
		return "invalid_input"
	case errors.Is(err, freemium.ErrReservationNotFound):
		return "reservation_not_found"
	case errors.Is(err, freemium.ErrCustomerLinked):
		return "customer_linked"
	}
	return "_OTHER"
}

func outcome(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "blocked"
}

func (o *Observer) spanName(op freemium.Op) string {
	if info, ok := o.known[op]; ok {
		return info.span
	}
	if n, ok := o.spanNames.Load(op); ok {
		return n.(string)
	}
	n, _ := o.spanNames.LoadOrStore(op, "freemium."+string(op))
	return n.(string)
}

type durationKey struct {
	op      freemium.Op
	errType string
}

func (o *Observer) durationOptions(op freemium.Op, errType string) []metric.RecordOption {
	if info, ok := o.known[op]; ok {
		return info.duration[errType]
	}
	k := durationKey{op, errType}
	if v, ok := o.durationAttrs.Load(k); ok {
		return v.([]metric.RecordOption)
	}
	v, _ := o.durationAttrs.LoadOrStore(k, durationOption(op, errType))
	return v.([]metric.RecordOption)
}

// durationOption is the attribute set of the duration of op that ended
// with errType.
func durationOption(op freemium.Op, errType string) []metric.RecordOption {
	attrs := []attribute.KeyValue{attribute.String("freemium.operation", string(op))}
	if errType != "" {
		attrs = append(attrs, attribute.String("error.type", errType))
	}
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
}

type decisionKey struct {
	allowed bool
	reason  freemium.Reason
	plan    string
}

func (o *Observer) decisionOptions(d *freemium.Decision) []metric.AddOption {
	k := decisionKey{d.Allowed, d.Reason, d.Plan}
	if v, ok := o.decisionAttrs.Load(k); ok {
		return v.([]metric.AddOption)
	}
	attrs := []attribute.KeyValue{attribute.String("freemium.outcome", outcome(d.Allowed)), attribute.String("freemium.plan", d.Plan)}
	if d.Reason != "" {
		attrs = append(attrs, attribute.String("freemium.reason", string(d.Reason)))
	}
	v, _ := o.decisionAttrs.LoadOrStore(k, []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attrs...))})
	return v.([]metric.AddOption)
}

// eventAttributes are the attributes of an event, by its kind.
func eventAttributes(e freemium.Event) []attribute.KeyValue {
	switch e.Kind {
	case freemium.EventNotificationEnqueued:
		return []attribute.KeyValue{attribute.String("freemium.notification.kind", string(e.Notification))}
	case freemium.EventNotificationDelivered:
		return []attribute.KeyValue{attribute.String("freemium.notification.kind", string(e.Notification)),
			attribute.String("freemium.outcome", e.Outcome)}
	case freemium.EventWebhook:
		return []attribute.KeyValue{attribute.String("freemium.webhook.type", e.Type), attribute.String("freemium.outcome", e.Outcome)}
	case freemium.EventConversion:
		return []attribute.KeyValue{attribute.String("freemium.plan", e.Plan)}
	case freemium.EventTopUp:
		return []attribute.KeyValue{attribute.String("freemium.top_up.price", e.PriceID)}
	}
	return nil
}

func (o *Observer) eventOptions(e freemium.Event) []metric.AddOption {
	e.Attempt = 0 // not an attribute: it would make a series per attempt
	if v, ok := o.eventAttrs.Load(e); ok {
		return v.([]metric.AddOption)
	}
	v, _ := o.eventAttrs.LoadOrStore(e, []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(eventAttributes(e)...))})
	return v.([]metric.AddOption)
}
