// Command freemium is the operator's tool for a freemium Gate on Postgres:
// it migrates the schema, shows a user's usage as the Gate decides it and
// the ledger of their credits, the free-to-paid funnel and the
// notification outbox, retries a failed notification, and refreshes a
// user's subscription. It reads the same
// config file as configfile.Load and the host's database.
//
//	go install github.com/freemiumkit/freemium/cmd/freemium@latest
//
// Usage:
//
//	freemium migrate up|status          [--database-url URL] [--schema NAME]
//	freemium usage USER                 --config FILE [--database-url URL]
//	freemium ledger USER [--since 30d]  --config FILE [--database-url URL]
//	freemium funnel [--since 30d]       --config FILE [--database-url URL]
//	freemium outbox [pending|failed]    [--limit 20] [--database-url URL]
//	freemium outbox retry ID            [--database-url URL]
//	freemium refresh USER               --config FILE [--database-url URL]  (needs STRIPE_SECRET_KEY)
//
// Flags may come before or after the arguments:
//
//	--config FILE        the freemium config file (YAML or JSON, as configfile.Load reads); env FREEMIUM_CONFIG
//	--database-url URL   the Postgres database; env DATABASE_URL
//	--schema NAME        the store's schema (pgstore.Config.Schema); default freemium
//	--json               print JSON instead of tables, for scripts
//
// usage writes nothing. It decides the plan as a check would: on the
// Store's mirror of the user's subscriptions when it is fresh; when it is
// older than the config's max age, on the subscriptions Stripe reports now
// if STRIPE_SECRET_KEY is set (without storing them), and otherwise on the
// mirror as it is, with a note saying so. A user the Store has never seen
// is on the free plan with nothing used.
//
// Exit codes:
//
//	0  done
//	1  the operation failed: the database or Stripe did not answer, or the
//	   notification to retry is unknown or not failed
//	2  the command line is wrong: an unknown command or flag, a missing
//	   argument, config file or database URL
//
// Example:
//
//	$ export DATABASE_URL=postgres://localhost/app FREEMIUM_CONFIG=freemium.yaml
//	$ freemium migrate up
//	$ freemium usage alice
//	user          alice
//	plan          pro
//	period        2026-11-22 09:00:00 UTC to 2026-12-22 09:00:00 UTC
//	used          19,250 of 20,000 tokens (96.25%), warned
//	held          0
//	remaining     750
//	first report  used
//	...
//	$ freemium outbox failed --json
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
