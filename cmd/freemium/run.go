package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/configfile"
	"github.com/freemiumkit/freemium/pgstore"
	"github.com/freemiumkit/freemium/stripesub"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// usageError is a wrong command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

const synopsis = `usage:
  freemium migrate up|status          [--database-url URL] [--schema NAME]
  freemium usage USER                 --config FILE [--database-url URL]
  freemium ledger USER [--since 30d]  --config FILE [--database-url URL]
  freemium funnel [--since 30d]       --config FILE [--database-url URL]
  freemium outbox [pending|failed]    [--limit 20] [--database-url URL]
  freemium outbox retry ID            [--database-url URL]
  freemium refresh USER               --config FILE [--database-url URL]  (needs STRIPE_SECRET_KEY)
flags (before or after the arguments): --config (env FREEMIUM_CONFIG), --database-url (env DATABASE_URL),
  --schema, --json, --since (funnel, ledger), --limit (outbox)
`

// options are the command line's flags.
type options struct {
	config, databaseURL, schema string
	json                        bool
	since                       string
	limit                       int
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	err := dispatch(ctx, args, stdout, getenv)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, synopsis)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "freemium: %v\n%s", err, synopsis)
		return exitUsage
	}
	fmt.Fprintf(stderr, "freemium: %v\n", err)
	return exitFailed
}

// parse reads flags wherever they are among args, and returns the
// arguments.
func parse(args []string, getenv func(string) string) (options, []string, error) {
	o := options{config: getenv("FREEMIUM_CONFIG"), databaseURL: getenv("DATABASE_URL")}
	fs := flag.NewFlagSet("freemium", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.config, "config", o.config, "")
	fs.StringVar(&o.databaseURL, "database-url", o.databaseURL, "")
	fs.StringVar(&o.schema, "schema", "", "")
	fs.BoolVar(&o.json, "json", false, "")
	fs.StringVar(&o.since, "since", "30d", "")
	fs.IntVar(&o.limit, "limit", 20, "")
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return o, nil, err
			}
			return o, nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return o, rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func dispatch(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	o, args, err := parse(args, getenv)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return usagef("no command")
	}
	cmd, args := args[0], args[1:]
	nargs := func(n int, what string) error {
		if len(args) != n {
			return usagef("%s takes %s", cmd, what)
		}
		return nil
	}
	var run func(*env) error
	needConfig := true
	switch cmd {
	case "help":
		return flag.ErrHelp
	case "migrate":
		if err := nargs(1, "up or status"); err != nil {
			return err
		}
		if args[0] != "up" && args[0] != "status" {
			return usagef("migrate takes up or status, not %q", args[0])
		}
		needConfig, run = false, func(e *env) error { return e.migrate(ctx, args[0]) }
	case "usage":
		if err := nargs(1, "a user ID"); err != nil {
			return err
		}
		run = func(e *env) error { return e.usage(ctx, args[0]) }
	case "funnel":
		if err := nargs(0, "no arguments"); err != nil {
			return err
		}
		since, err := parseSince(o.since)
		if err != nil {
			return err
		}
		run = func(e *env) error { return e.funnel(ctx, since) }
	case "ledger":
		if err := nargs(1, "a user ID"); err != nil {
			return err
		}
		since, err := parseSince(o.since)
		if err != nil {
			return err
		}
		run = func(e *env) error { return e.ledger(ctx, args[0], since) }
	case "outbox":
		needConfig = false
		switch {
		case len(args) == 0:
			run = func(e *env) error { return e.outbox(ctx, freemium.DeliveryPending, freemium.DeliveryFailed) }
		case len(args) == 1 && (args[0] == "pending" || args[0] == "failed"):
			run = func(e *env) error { return e.outbox(ctx, freemium.DeliveryState(args[0])) }
		case len(args) == 2 && args[0] == "retry":
			run = func(e *env) error { return e.retry(ctx, args[1]) }
		default:
			return usagef("outbox takes nothing, pending, failed, or retry ID")
		}
		if o.limit <= 0 {
			return usagef("--limit %d is not positive", o.limit)
		}
	case "refresh":
		if err := nargs(1, "a user ID"); err != nil {
			return err
		}
		if getenv("STRIPE_SECRET_KEY") == "" {
			return usagef("refresh needs a subscription checker: set STRIPE_SECRET_KEY")
		}
		run = func(e *env) error { return e.refresh(ctx, args[0]) }
	default:
		return usagef("unknown command %q", cmd)
	}
	e, err := open(ctx, o, needConfig, stdout, getenv)
	if err != nil {
		return err
	}
	defer e.close()
	return run(e)
}

// parseSince reads a duration: Nd for days, or a Go duration (72h).
func parseSince(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 && n <= 36500 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, usagef("--since %q is not a duration: use days (30d) or hours (72h)", s)
}

// env is what a command runs on.
type env struct {
	opts    options
	out     io.Writer
	pool    *pgxpool.Pool
	store   *pgstore.Store
	gate    *freemium.Gate
	checker bool // a real subscription checker (Stripe) is configured
	maxAge  time.Duration
}

// open reads the config file (when needed or given) and connects.
func open(ctx context.Context, o options, needConfig bool, out io.Writer, getenv func(string) string) (*env, error) {
	var cfg freemium.Config
	switch {
	case o.config != "":
		var err error
		if cfg, err = configfile.Load(o.config); err != nil {
			return nil, usageError{err.Error()}
		}
	case needConfig:
		return nil, usagef("no config file: give --config FILE or set FREEMIUM_CONFIG")
	}
	if o.databaseURL == "" {
		return nil, usagef("no database: give --database-url URL or set DATABASE_URL")
	}
	pcfg, err := pgxpool.ParseConfig(o.databaseURL)
	if err != nil {
		return nil, usagef("--database-url: %v", err)
	}
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	store, err := pgstore.New(pool, &pgstore.Config{Schema: o.schema})
	if err != nil {
		pool.Close()
		return nil, usageError{err.Error()}
	}
	e := &env{opts: o, out: out, pool: pool, store: store}
	cfg.Store = store
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) // what matters is in the output
	if key := getenv("STRIPE_SECRET_KEY"); key != "" {
		checker, err := stripesub.New(stripesub.Config{APIKey: key, BackendURL: getenv("STRIPE_BACKEND_URL")})
		if err != nil {
			pool.Close()
			return nil, usageError{err.Error()}
		}
		cfg.Subscriptions, e.checker = checker, true
	} else {
		// Decide on the Store's mirror as it is: a lookup always fails,
		// and the mirror is served however old; a user never mirrored is
		// on Free.
		cfg.Subscriptions = mirrorOnly{}
		cfg.SubscriptionGrace = 100 * 365 * 24 * time.Hour
		cfg.SubscriptionFallback = freemium.FallbackFree
	}
	if e.gate, err = freemium.New(cfg); err != nil {
		pool.Close()
		return nil, usageError{err.Error()}
	}
	e.maxAge = cfg.SubscriptionMaxAge
	if e.maxAge == 0 {
		e.maxAge = 5 * time.Minute // freemium's default
	}
	return e, nil
}

func (e *env) close() { e.pool.Close() }

// errNoChecker is the lookup error of mirrorOnly.
var errNoChecker = errors.New("no subscription checker: set STRIPE_SECRET_KEY to look subscriptions up")

// mirrorOnly is the checker of a command without Stripe: it knows
// nothing, so the Gate decides on its mirror.
type mirrorOnly struct{}

func (mirrorOnly) Subscriptions(context.Context, string) ([]freemium.Subscription, error) {
	return nil, errNoChecker
}

// emit prints v as JSON with --json, else calls table with a tab writer.
func (e *env) emit(v any, table func(w io.Writer)) error {
	if e.opts.json {
		enc := json.NewEncoder(e.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}
