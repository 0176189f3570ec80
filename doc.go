// Package freemium gates metered work behind a free tier and paid plans:
// a user's first report is free, then a subscription is required, and each
// plan has a token allowance per period.
//
// A host builds one Gate with New and a Config, and asks it before metered
// work: Gate.Check answers a Decision (allowed or not, why, a message for
// the user, used / limit / percentage, a warning at Config.WarnAt, when the
// period ends); Gate.Reserve holds the estimate atomically and returns a
// Reservation to Commit with what the work really cost, or to Cancel.
// Gate.Middleware does both around an http.Handler. Being blocked is a
// value, Decision.Allowed == false; errors are for invalid input and failed
// backends. A Gate is safe for simultaneous use.
//
// # Packages
//
// This package needs nothing outside the standard library. The adapters
// are packages of their own, so that a host compiles only what it uses:
//
//   - pgstore: the Store in Postgres (pgx/v5), with its migration.
//   - stripesub: the SubscriptionChecker and webhook handler for Stripe.
//   - resendnotify: the Notifier that emails through Resend.
//   - configfile: a Config from a YAML or JSON file.
//   - otelfreemium: the Observer that records metrics and traces with
//     OpenTelemetry.
//   - cmd/freemium: the operator's command (migrate, usage, funnel,
//     outbox, refresh).
//   - freemiumtest: fakes and a clock for the host's tests, and the suite
//     a Store must pass.
//
// MemoryStore, in this package, keeps everything in the process: for tests,
// demos and single-instance services.
//
// # Subscriptions
//
// Config.Subscriptions says which plan each user is on: stripesub.Checker,
// or the host's own SubscriptionChecker. The Gate keeps a mirror of each
// user's subscriptions in the Store and refreshes it when it is older than
// Config.SubscriptionMaxAge; call Gate.Refresh after the host's own upgrade
// or cancel code, and Gate.ApplySubscription from a webhook.
//
// # Notifications
//
// When a user reaches Config.WarnAt or is blocked, the Gate puts a
// notification in the Store's outbox, once per user, kind and period.
// Gate.Start delivers them through Config.Notifier, with retries; Gate.Funnel
// counts prompts and the conversions that followed.
//
// # Operating
//
// Each Store call is bounded by Config.StoreTimeout, so a database that
// stops answering fails requests instead of hanging them. Config.Logger
// gets records with attributes (operation, user_id as Config.UserIDLogging
// says, the error), and Config.Observer is told of every operation and
// event, for metrics and traces. Gate.Inspect shows what the Gate knows of
// a user without writing anything, and Gate.OutboxStats, Gate.Outbox and
// Gate.RetryNotification show and retry the outbox.
//
// # Writing a Store
//
// Hosts do not need this section. A Store keeps the Gate's state; the
// types below exist for Store implementations (and say so), and
// freemiumtest.RunStoreTests is the suite every Store must pass:
//
//   - usage and holds: Window, State, Account, Hold, HoldRef,
//     ReserveResult, HoldRetention;
//   - the subscription mirror: SubscriptionMirror, MirroredSubscription,
//     SubscriptionUpdate, Conversion;
//   - the outbox: NotifiedKinds, Outbound, Outcome, DeliveryState,
//     NotificationRecord, and the optional OutboxInspector.
package freemium
