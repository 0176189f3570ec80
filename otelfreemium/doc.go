// Package otelfreemium records what a freemium.Gate does as OpenTelemetry
// metrics and traces. It uses the OpenTelemetry API only: the host chooses
// the SDK and the exporter (Prometheus, OTLP, stdout), and hands their
// providers in Options, or sets the global ones.
//
//	obs, err := otelfreemium.New(otelfreemium.Options{MeterProvider: mp, TracerProvider: tp})
//	...
//	gate, err := freemium.New(freemium.Config{Store: store, Observer: obs})
//	...
//	unregister, err := obs.ObserveOutbox(gate) // the outbox gauges
//
// # Metrics
//
// Names and units follow the OpenTelemetry semantic conventions: dotted
// names in the freemium namespace, durations in seconds, counts in
// curly-brace units. Attributes are few and bounded: plan names come
// from the Config, webhook types from the handler (stripesub names the
// types it does not read "other").
//
//	freemium.decisions                   counter    {decision}      freemium.outcome (allowed, blocked), freemium.reason, freemium.plan
//	freemium.operation.duration          histogram  s               freemium.operation, error.type (when it failed)
//	freemium.notifications.enqueued      counter    {notification}  freemium.notification.kind
//	freemium.notifications.delivered     counter    {attempt}       freemium.notification.kind, freemium.outcome (sent, retry, failed)
//	freemium.webhook.events              counter    {event}         freemium.webhook.type, freemium.outcome (applied, ignored, rejected, error)
//	freemium.conversions                 counter    {conversion}    freemium.plan
//	freemium.top_ups                     counter    {top-up}        freemium.top_up.price (one of Config.TopUps)
//	freemium.outbox.pending              gauge      {notification}  (ObserveOutbox)
//	freemium.outbox.oldest_pending.age   gauge      s               (ObserveOutbox)
//
// freemium.operation is check, reserve, commit, cancel, record, usage,
// refresh, apply_subscription or dispatch for the Gate's operations, and
// store.Load, store.Reserve, ... for its calls to a Store other than a
// MemoryStore: subscription refreshes by outcome and duration are the
// histogram's refresh series. error.type is canceled, timeout,
// subscription_unavailable, invalid_input, reservation_not_found,
// customer_linked or _OTHER. A blocked decision is not an error.
//
// # Traces
//
// Each operation is a span named freemium.<operation> (freemium.check,
// freemium.store.Reserve), of kind internal, in the caller's trace: a
// refresh during a Check, and the Store calls of either, are its
// children. A span has freemium.outcome, freemium.reason and
// freemium.plan for a decision, and error.type with an error status when
// the operation failed. Events (notifications, conversions, webhooks) are
// also added to the current span.
package otelfreemium
