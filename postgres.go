package freemium

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/freemiumkit/freemium/internal/migrations"
)

// Migrations are the SQL files PostgresStore.Migrate applies, numbered
// NNN_name.up.sql and NNN_name.down.sql, for hosts that run their own
// migration tool. They create unqualified objects: run them with search_path
// set to the schema, which must exist.
var Migrations fs.FS = migrations.FS

// PostgresConfig configures a PostgresStore.
type PostgresConfig struct {
	// Schema holds the store's tables and functions: lower-case letters,
	// digits and underscores, starting with a letter or underscore, at most
	// 63 bytes, and not starting with pg_ (Postgres reserves it). Default
	// "freemium".
	Schema string
}

// PostgresStore is a Store in Postgres, through a pgx pool. Every operation
// is one statement, so one round trip. A user's live holds sit on the
// user's account row and usage on one row per window; Load reads the
// account, the subscription mirror and the latest windows together, and
// Reserve checks and holds in one statement on the locked usage and account
// rows, so any number of app instances may share the database under READ
// COMMITTED. Holds are committed without waiting for the WAL flush (they
// expire anyway); recorded usage, mirrors and notifications are durable.
// Safe for simultaneous use.
type PostgresStore struct {
	pool   *pgxpool.Pool
	schema string
	sql    struct {
		load, loadWindow, reserve, commit, cancel, record, createAccount, markFirst string
		putSubscription, linkCustomer, customerUser, conversions                    string
		enqueue, claim, finish, notifications                                       string
	}
}

var _ Store = (*PostgresStore)(nil)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// NewPostgresStore returns a PostgresStore on pool. cfg may be nil for the
// defaults. Call Migrate (or apply Migrations) before use.
func NewPostgresStore(pool *pgxpool.Pool, cfg *PostgresConfig) (*PostgresStore, error) {
	if pool == nil {
		return nil, errors.New("freemium: NewPostgresStore: pool is nil: pass a *pgxpool.Pool from pgxpool.New")
	}
	var c PostgresConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Schema == "" {
		c.Schema = "freemium"
	}
	if strings.HasPrefix(c.Schema, "pg_") {
		return nil, fmt.Errorf("freemium: PostgresConfig.Schema %q starts with pg_, which Postgres reserves: choose another name", c.Schema)
	}
	if !schemaName.MatchString(c.Schema) {
		return nil, fmt.Errorf("freemium: PostgresConfig.Schema %q is not a plain identifier: use lower-case letters, digits and underscores, at most 63 bytes", c.Schema)
	}
	s := &PostgresStore{pool: pool, schema: c.Schema}
	schema := pgx.Identifier{c.Schema}.Sanitize()
	s.sql.load = statement(loadSQL, schema, "", "", "$2")
	s.sql.loadWindow = statement(loadWindowSQL, schema, "", "", "")
	s.sql.reserve = statement(reserveSQL, schema, "$6", "$9", "$8")
	s.sql.commit = statement(commitSQL, schema, "", "", "")
	s.sql.cancel = statement(cancelSQL, schema, "", "", "")
	s.sql.record = statement(recordSQL, schema, "$2", "$3", "$6")
	s.sql.createAccount = statement(createAccountSQL, schema, "", "", "")
	s.sql.markFirst = statement(markFirstSQL, schema, "", "", "")
	s.sql.putSubscription = statement(putSubscriptionSQL, schema, "", "", "")
	s.sql.linkCustomer = statement(linkCustomerSQL, schema, "", "", "")
	s.sql.customerUser = statement(customerUserSQL, schema, "", "", "")
	s.sql.conversions = statement(conversionsSQL, schema, "", "", "")
	s.sql.enqueue = statement(enqueueSQL, schema, "", "", "")
	s.sql.claim = statement(claimSQL, schema, "", "", "")
	s.sql.finish = statement(finishSQL, schema, "", "", "")
	s.sql.notifications = statement(notificationsSQL, schema, "", "", "")
	return s, nil
}

// statement fills in a statement template: {s} is the schema; {start},
// {every} (µs) and {now} are the statement's placeholders for the window;
// the fragments below are spelled out in their terms, about the account
// row "a".
func statement(tmpl, schema, start, every, now string) string {
	fragments := strings.NewReplacer(
		// The start of the user's window: Every windows from the anchor
		// (now, for a user without a row), fixed windows as given.
		// A now before the anchor (a clock behind the instance that anchored
		// the user) is in the first window.
		"{window_start}", "(CASE WHEN {every}::bigint > 0 THEN date_bin({every} * interval '1 microsecond', greatest({now}::timestamptz, a.anchor), coalesce(a.anchor, {now})) ELSE {start}::timestamptz END)",
		// The live holds on the row.
		"{reserved}", "coalesce((SELECT least(coalesce(sum(x.tokens), 0), {max}) FROM unnest(a.holds) x WHERE x.expires_at > {now}), 0)",
		"{first_held}", "coalesce((SELECT bool_or(x.first_report) FROM unnest(a.holds) x WHERE x.expires_at > {now}), false)",
	)
	params := strings.NewReplacer("{s}", schema, "{start}", start, "{every}", every, "{now}", now,
		"{max}", "9223372036854775807")
	return params.Replace(fragments.Replace(tmpl))
}

// Every statement that writes takes rows in one order: the reservation or
// idempotency key, then the window's usage row, then the account row. So
// none can deadlock another, and a Reserve, which locks the usage row
// before the account row, reads the latest usage and the latest holds
// together: a Commit has either finished both or touched neither.

// loadSQL reads a user's account, mirrored subscription and recent usage:
// $1 user, $2 now. Load picks the window's usage in Go, once the window
// function has seen the account: the usage rows of the four latest windows
// and of the Lifetime window come back, which holds the current window but
// after a return to a plan whose window is older than four others.
const loadSQL = `
SELECT a.anchor, coalesce(a.first_report_used, false), {reserved}, {first_held},
       coalesce(s.customer_id, ''), coalesce(s.sub_id, ''), coalesce(s.sub_customer_id, ''),
       coalesce(s.price_id, ''), coalesce(s.status, ''), s.period_start, s.period_end,
       coalesce(s.cancel_at_period_end, false), coalesce(s.paid_plan, ''), s.as_of, s.synced_at,
       coalesce(s.pulled, false),
       coalesce(r.starts, '{}'), coalesce(r.used, '{}'), coalesce(r.notified, '{}'),
       coalesce(l.used, 0), coalesce(l.notified, 0)
FROM (SELECT 1) one
LEFT JOIN {s}.accounts a ON a.user_id = $1
LEFT JOIN {s}.subscriptions s ON s.user_id = $1
LEFT JOIN LATERAL (
	SELECT array_agg(x.period_start) AS starts, array_agg(x.used) AS used, array_agg(x.notified) AS notified FROM (
		SELECT period_start, used, notified FROM {s}.usage_periods WHERE user_id = $1
		ORDER BY period_start DESC LIMIT 4) x -- recentWindows
) r ON true
LEFT JOIN {s}.usage_periods l ON l.user_id = $1 AND l.period_start = '1970-01-01 00:00:00+00'`

// recentWindows is how many of a user's latest windows loadSQL reads.
const recentWindows = 4

// loadWindowSQL reads one window's usage: $1 user, $2 start. Load falls
// back on it when the window is older than the ones loadSQL read.
const loadWindowSQL = `
SELECT coalesce(u.used, 0), coalesce(u.notified, 0)
FROM (SELECT 1) one LEFT JOIN {s}.usage_periods u ON u.user_id = $1 AND u.period_start = $2`

// reserveSQL checks and holds in one statement: $1 id, $2 user, $3 tokens,
// $4 limit (< 0: Unlimited), $5 first report free, $6 start, $7 expires,
// $8 now, $9 every (µs), $10 prune old reservations.
//
// It locks the window's usage row (an upsert that changes nothing) and then
// the account row (inserted, or updated by ON CONFLICT DO UPDATE, which
// evaluates its expressions on the row's latest version). The admission rule
// of Hold decides whether the new hold joins the row's holds; the row comes
// back either way, with the state as it was before the hold. same_window is
// false in the one case the rule could not be applied: the user's first
// activity, racing another, set a different anchor for an Every window.
const reserveSQL = `
WITH cfg AS (
	-- A hold need not survive a crash (it expires anyway): this transaction
	-- does not wait for the WAL flush. Commit, which records usage, does.
	SELECT set_config('synchronous_commit', 'off', true) AS v
), win AS (
	-- The window, from the anchor in this statement's snapshot: an anchor
	-- never changes once set.
	SELECT {window_start} AS ws
	FROM cfg, (SELECT 1) one LEFT JOIN {s}.accounts a ON a.user_id = $2::text
), usage AS (
	INSERT INTO {s}.usage_periods AS u (user_id, period_start, used)
	SELECT $2::text, ws, 0 FROM win
	ON CONFLICT (user_id, period_start) DO UPDATE SET used = u.used
	RETURNING u.period_start AS ws, u.used, u.notified
), acct AS (
	INSERT INTO {s}.accounts AS a (user_id, anchor, holds)
	SELECT $2::text, $8::timestamptz,
	       CASE WHEN $5::boolean OR $4::bigint < 0 OR usage.used::numeric + $3::bigint <= $4::bigint
	            THEN ARRAY[ROW($1::text, $3::bigint, $7::timestamptz, $5::boolean)::{s}.hold] ELSE '{}' END
	FROM usage
	ON CONFLICT (user_id) DO UPDATE SET holds =
		ARRAY(SELECT x FROM unnest(a.holds) x WHERE x.expires_at > $8)
		|| CASE WHEN {window_start} = (SELECT ws FROM usage)
		         AND (($5 AND NOT a.first_report_used AND NOT {first_held})
		              OR $4 < 0
		              OR (SELECT used FROM usage)::numeric + {reserved} + $3 <= $4)
		        THEN ARRAY[ROW($1, $3, $7, $5 AND NOT a.first_report_used AND NOT {first_held})::{s}.hold]
		        ELSE '{}' END
	RETURNING {window_start} = (SELECT ws FROM usage) AS same_window, a.first_report_used,
	          (SELECT x.first_report FROM unnest(a.holds) x WHERE x.id = $1) AS first,
	          coalesce((SELECT least(coalesce(sum(x.tokens), 0), {max}) FROM unnest(a.holds) x WHERE x.expires_at > $8 AND x.id <> $1), 0) AS reserved,
	          coalesce((SELECT bool_or(x.first_report) FROM unnest(a.holds) x WHERE x.expires_at > $8 AND x.id <> $1), false) AS first_held
), res AS (
	INSERT INTO {s}.reservations (id, user_id, period_start, first_report, expires_at)
	SELECT $1, $2, usage.ws, acct.first, $7 FROM acct, usage WHERE acct.first IS NOT NULL
), prune AS (
	DELETE FROM {s}.reservations WHERE $10 AND id IN (
		SELECT id FROM {s}.reservations WHERE expires_at < $8::timestamptz - interval '1 day'
		ORDER BY expires_at LIMIT 2048 FOR UPDATE SKIP LOCKED)
)
SELECT usage.ws, usage.used, usage.notified, acct.reserved, acct.first_report_used, acct.first_held,
       acct.first IS NOT NULL, coalesce(acct.first, false), acct.same_window
FROM usage, acct`

// commitSQL records a hold's usage: $1 id, $2 tokens, $3 now. It returns
// whether the reservation is known.
const commitSQL = `
WITH r AS (
	UPDATE {s}.reservations SET state = 'committed'
	WHERE id = $1::text AND state <> 'committed' AND expires_at >= $3::timestamptz - interval '1 day'
	RETURNING user_id, period_start, first_report
), usage AS (
	INSERT INTO {s}.usage_periods AS u (user_id, period_start, used)
	SELECT user_id, period_start, $2::bigint FROM r
	ON CONFLICT (user_id, period_start) DO UPDATE SET used = least(u.used::numeric + excluded.used, {max})::bigint
	RETURNING u.user_id
), acct AS (
	UPDATE {s}.accounts a
	SET holds = ARRAY(SELECT x FROM unnest(a.holds) x WHERE x.id <> $1),
	    first_report_used = a.first_report_used OR (SELECT first_report FROM r)
	WHERE a.user_id = (SELECT user_id FROM usage)
)
SELECT EXISTS (SELECT 1 FROM r)
    OR EXISTS (SELECT 1 FROM {s}.reservations WHERE id = $1 AND expires_at >= $3::timestamptz - interval '1 day')`

// cancelSQL ends a held hold: $1 id, $2 now. It returns whether the
// reservation is known.
const cancelSQL = `
WITH cfg AS (
	SELECT set_config('synchronous_commit', 'off', true) AS v -- holds need not be durable
), r AS (
	UPDATE {s}.reservations SET state = 'canceled'
	WHERE id = $1::text AND state = 'held' AND expires_at >= $2::timestamptz - interval '1 day'
	RETURNING user_id
), acct AS (
	UPDATE {s}.accounts a SET holds = ARRAY(SELECT x FROM unnest(a.holds) x WHERE x.id <> $1)
	WHERE a.user_id = (SELECT user_id FROM r)
)
SELECT (SELECT v FROM cfg) IS NOT NULL
   AND (EXISTS (SELECT 1 FROM r)
        OR EXISTS (SELECT 1 FROM {s}.reservations WHERE id = $1 AND expires_at >= $2::timestamptz - interval '1 day'))`

// recordSQL adds usage, once per non-empty key: $1 user, $2 start, $3 every
// (µs), $4 tokens, $5 key, $6 now. It locks no account row. For a user
// without one it writes nothing and answers false: the caller creates the
// account (its anchor fixes Every windows) and records again.
const recordSQL = `
WITH prior AS (
	SELECT a.anchor, {window_start} AS ws
	FROM (SELECT 1) one LEFT JOIN {s}.accounts a ON a.user_id = $1::text
), k AS (
	INSERT INTO {s}.usage_keys (user_id, key, tokens, recorded_at)
	SELECT $1::text, $5::text, $4::bigint, $6::timestamptz FROM prior WHERE $5 <> '' AND prior.anchor IS NOT NULL
	ON CONFLICT DO NOTHING
	RETURNING 1
), usage AS (
	INSERT INTO {s}.usage_periods AS u (user_id, period_start, used)
	SELECT $1::text, prior.ws, $4::bigint FROM prior
	WHERE prior.anchor IS NOT NULL AND ($5 = '' OR EXISTS (SELECT 1 FROM k))
	ON CONFLICT (user_id, period_start) DO UPDATE SET used = least(u.used::numeric + excluded.used, {max})::bigint
)
SELECT anchor IS NOT NULL FROM prior`

// createAccountSQL anchors a user at their first activity: $1 user, $2 now.
const createAccountSQL = `
INSERT INTO {s}.accounts (user_id, anchor) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`

// markFirstSQL: $1 user, $2 now.
const markFirstSQL = `
INSERT INTO {s}.accounts AS a (user_id, anchor, first_report_used) VALUES ($1, $2, true)
ON CONFLICT (user_id) DO UPDATE SET first_report_used = true WHERE NOT a.first_report_used`

// putSubscriptionSQL mirrors a snapshot unless a newer one is held: $1 user,
// $2 subscription ID, $3 its customer, $4 price, $5 status, $6 period start,
// $7 period end, $8 cancel at period end, $9 paid plan, $10 status rank,
// $11 as of, $12 synced at, $13 pulled. The upsert decides on the row's latest version,
// so the conversion it records is decided atomically with the write (dated
// by the fetch for a pull, by the event otherwise).
const putSubscriptionSQL = `
WITH up AS (
	INSERT INTO {s}.subscriptions AS t (user_id, sub_id, sub_customer_id, price_id, status, period_start,
		period_end, cancel_at_period_end, paid_plan, status_rank, as_of, synced_at, pulled, converted)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, false)
	ON CONFLICT (user_id) DO UPDATE SET sub_id = excluded.sub_id, sub_customer_id = excluded.sub_customer_id,
		price_id = excluded.price_id, status = excluded.status, period_start = excluded.period_start,
		period_end = excluded.period_end, cancel_at_period_end = excluded.cancel_at_period_end,
		paid_plan = excluded.paid_plan, status_rank = excluded.status_rank, as_of = excluded.as_of,
		synced_at = excluded.synced_at, pulled = excluded.pulled,
		converted = t.as_of > '0001-01-01 00:00:00+00' AND t.paid_plan = '' AND excluded.paid_plan <> ''
	WHERE (excluded.pulled OR t.sub_id = '' OR t.sub_id = excluded.sub_id OR excluded.status_rank >= t.status_rank)
	  AND (excluded.as_of > t.as_of
	       OR (excluded.as_of = t.as_of AND (excluded.pulled OR excluded.status_rank >= t.status_rank)))
	RETURNING converted
), conv AS (
	INSERT INTO {s}.conversions (user_id, plan, converted_at)
	SELECT $1, $9, CASE WHEN $13 THEN $12::timestamptz ELSE $11::timestamptz END FROM up WHERE up.converted
)
SELECT EXISTS (SELECT 1 FROM up)`

// linkCustomerSQL: $1 user, $2 customer, $3 now. It returns the user the
// customer belongs to; only when that is $1 does it link and mark the
// mirror for refresh.
const linkCustomerSQL = `
WITH c AS (
	INSERT INTO {s}.customers AS c (customer_id, user_id, linked_at) VALUES ($2, $1, $3)
	ON CONFLICT (customer_id) DO UPDATE SET user_id = c.user_id
	RETURNING c.user_id
), link AS (
	INSERT INTO {s}.subscriptions AS t (user_id, customer_id)
	SELECT $1, $2 FROM c WHERE c.user_id = $1
	ON CONFLICT (user_id) DO UPDATE SET customer_id = excluded.customer_id, synced_at = '0001-01-01 00:00:00+00'
)
SELECT user_id FROM c`

// customerUserSQL: $1 customer.
const customerUserSQL = `SELECT coalesce((SELECT user_id FROM {s}.customers WHERE customer_id = $1), '')`

// conversionsSQL: $1 from, $2 to.
const conversionsSQL = `
SELECT user_id, plan, converted_at FROM {s}.conversions
WHERE converted_at >= $1 AND converted_at < $2 ORDER BY converted_at`

// enqueueSQL marks a kind notified for a window and, when the mark is new,
// adds the notification: $1 id, $2 user, $3 kind, $4 its bit, $5 window
// start, $6 usage (JSON), $7 upgrade URL, $8 created at, $9 state, $10 due.
// The upsert decides on the usage row's latest version, so of racing
// Enqueues exactly one adds.
const enqueueSQL = `
WITH mark AS (
	INSERT INTO {s}.usage_periods AS u (user_id, period_start, used, notified) VALUES ($2, $5, 0, $4)
	ON CONFLICT (user_id, period_start) DO UPDATE SET notified = u.notified | excluded.notified
	WHERE u.notified & excluded.notified = 0
	RETURNING 1
), ins AS (
	INSERT INTO {s}.notifications (id, user_id, kind, period_start, usage, upgrade_url, created_at, state, next_attempt_at)
	SELECT $1, $2, $3, $5, $6, $7, $8, $9, $10 FROM mark
	ON CONFLICT (id) DO NOTHING
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM ins)`

// claimSQL: $1 now, $2 limit, $3 lease (µs).
const claimSQL = `
UPDATE {s}.notifications SET next_attempt_at = $1::timestamptz + $3 * interval '1 microsecond'
WHERE id IN (
	SELECT id FROM {s}.notifications WHERE state = 'pending' AND next_attempt_at <= $1
	ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING id, user_id, kind, usage, upgrade_url, created_at, attempts, next_attempt_at`

// finishSQL: $1 id, $2 state, $3 message ID, $4 retry at, $5 error, $6 now,
// $7 the claim (its next_attempt_at when claimed): a claim since taken over
// matches no row.
const finishSQL = `
UPDATE {s}.notifications SET attempts = attempts + 1, state = $2, last_error = $5,
	message_id = CASE WHEN $2 = 'sent' THEN $3 ELSE message_id END,
	sent_at = CASE WHEN $2 = 'sent' THEN $6::timestamptz ELSE sent_at END,
	next_attempt_at = CASE WHEN $2 = 'pending' THEN $4::timestamptz ELSE next_attempt_at END
WHERE id = $1 AND state = 'pending' AND next_attempt_at = $7`

// notificationsSQL: $1 from, $2 to.
const notificationsSQL = `
SELECT id, user_id, kind, usage, upgrade_url, created_at, state, attempts, message_id, sent_at, last_error
FROM {s}.notifications WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at, id`

// pruneEvery: about one Reserve in pruneEvery deletes up to 2048 reservations
// a day past expiry, more than the pruneEvery it adds meanwhile.
const pruneEvery = 512

// Load implements Store.
func (s *PostgresStore) Load(ctx context.Context, userID string, now time.Time, window func(Account) Window) (State, error) {
	var (
		st                                 State
		a                                  = &st.Account
		sub                                = &a.Subscription
		anchor, start, end, asOf, syncedAt pgtype.Timestamptz
		starts                             []time.Time
		used                               []int64
		notified                           []NotifiedKinds
		lifetimeUsed                       int64
		lifetimeNotified                   NotifiedKinds
	)
	err := s.pool.QueryRow(ctx, s.sql.load, userID, now).Scan(
		&anchor, &st.FirstReportUsed, &st.Reserved, &st.FirstReportHeld,
		&a.CustomerID, &sub.ID, &sub.CustomerID, &sub.PriceID, &sub.Status, &start, &end,
		&sub.CancelAtPeriodEnd, &sub.PaidPlan, &asOf, &syncedAt, &sub.Pulled,
		&starts, &used, &notified, &lifetimeUsed, &lifetimeNotified)
	if err != nil {
		return State{}, err
	}
	a.Anchor, sub.CurrentPeriodStart, sub.CurrentPeriodEnd = pgTime(anchor), pgTime(start), pgTime(end)
	sub.AsOf, sub.SyncedAt = pgTime(asOf), pgTime(syncedAt)

	st.PeriodStart, st.PeriodEnd = window(*a).Bounds(a.Anchor, now)
	st.PeriodStart = st.PeriodStart.UTC()
	switch i := slices.IndexFunc(starts, st.PeriodStart.Equal); {
	case i >= 0:
		st.Used, st.Notified = used[i], notified[i]
	case st.PeriodStart.Equal(lifetimeStart):
		st.Used, st.Notified = lifetimeUsed, lifetimeNotified
	case len(starts) == recentWindows && st.PeriodStart.Before(starts[len(starts)-1]):
		// A window older than the latest few: ask for it.
		if err := s.pool.QueryRow(ctx, s.sql.loadWindow, userID, st.PeriodStart).Scan(&st.Used, &st.Notified); err != nil {
			return State{}, err
		}
	}
	return st, nil
}

// pgTime is t in UTC; Go's zero time for NULL and for the zero time the
// schema stores.
func pgTime(t pgtype.Timestamptz) time.Time {
	if !t.Valid || t.Time.IsZero() {
		return time.Time{}
	}
	return t.Time.UTC()
}

// Reserve implements Store.
func (s *PostgresStore) Reserve(ctx context.Context, h Hold, now time.Time) (ReserveResult, error) {
	for attempt := 0; ; attempt++ {
		var r ReserveResult
		var sameWindow bool
		st := &r.State
		err := s.pool.QueryRow(ctx, s.sql.reserve,
			h.ID, h.UserID, h.Tokens, h.Limit, h.FirstReport, h.Window.Start, h.ExpiresAt, now,
			h.Window.Every.Microseconds(), rand.N(pruneEvery) == 0,
		).Scan(&st.PeriodStart, &st.Used, &st.Notified, &st.Reserved, &st.FirstReportUsed, &st.FirstReportHeld,
			&r.Admitted, &r.FirstReport, &sameWindow)
		if err != nil {
			return ReserveResult{}, err
		}
		if !sameWindow && attempt == 0 {
			// A racing first activity anchored the user: the user's row now
			// exists, so the next attempt reads its anchor.
			continue
		}
		if !sameWindow {
			return ReserveResult{}, errors.New("freemium: reserve: the user's window moved twice during one Reserve")
		}
		st.PeriodStart, st.PeriodEnd = h.Window.end(st.PeriodStart)
		return r, nil
	}
}

// Commit implements Store.
func (s *PostgresStore) Commit(ctx context.Context, holdID string, tokens int64, now time.Time) error {
	return s.byID(ctx, s.sql.commit, holdID, tokens, now)
}

// Cancel implements Store.
func (s *PostgresStore) Cancel(ctx context.Context, holdID string, now time.Time) error {
	return s.byID(ctx, s.sql.cancel, holdID, now)
}

// byID runs a statement on a reservation that answers whether it is known.
func (s *PostgresStore) byID(ctx context.Context, sql string, args ...any) error {
	var found bool
	if err := s.pool.QueryRow(ctx, sql, args...).Scan(&found); err != nil {
		return err
	}
	if !found {
		return ErrReservationNotFound
	}
	return nil
}

// Record implements Store.
func (s *PostgresStore) Record(ctx context.Context, userID string, w Window, tokens int64, key string, now time.Time) error {
	for attempt := 0; ; attempt++ {
		var known bool
		err := s.pool.QueryRow(ctx, s.sql.record, userID, w.Start, w.Every.Microseconds(), tokens, key, now).Scan(&known)
		if err != nil || known {
			return err
		}
		if attempt > 0 {
			return errors.New("freemium: record: the user's account could not be created")
		}
		// A new user: anchor them (or learn the anchor a racing first
		// activity set), then record.
		if _, err := s.pool.Exec(ctx, s.sql.createAccount, userID, now); err != nil {
			return err
		}
	}
}

// MarkFirstReportUsed implements Store.
func (s *PostgresStore) MarkFirstReportUsed(ctx context.Context, userID string, now time.Time) error {
	_, err := s.pool.Exec(ctx, s.sql.markFirst, userID, now)
	return err
}

// PutSubscription implements Store.
func (s *PostgresStore) PutSubscription(ctx context.Context, userID string, snap SubscriptionSnapshot, now time.Time) (bool, error) {
	var wrote bool
	err := s.pool.QueryRow(ctx, s.sql.putSubscription, userID, snap.ID, snap.CustomerID, snap.PriceID,
		string(snap.Status), snap.CurrentPeriodStart, snap.CurrentPeriodEnd, snap.CancelAtPeriodEnd,
		snap.PaidPlan, statusRank(snap.Status), snap.AsOf, snap.SyncedAt, snap.Pulled).Scan(&wrote)
	return wrote, err
}

// LinkCustomer implements Store.
func (s *PostgresStore) LinkCustomer(ctx context.Context, userID, customerID string, now time.Time) error {
	var owner string
	if err := s.pool.QueryRow(ctx, s.sql.linkCustomer, userID, customerID, now).Scan(&owner); err != nil {
		return err
	}
	if owner != userID {
		return ErrCustomerLinked
	}
	return nil
}

// CustomerUser implements Store.
func (s *PostgresStore) CustomerUser(ctx context.Context, customerID string) (string, error) {
	var user string
	err := s.pool.QueryRow(ctx, s.sql.customerUser, customerID).Scan(&user)
	return user, err
}

// Conversions implements Store.
func (s *PostgresStore) Conversions(ctx context.Context, from, to time.Time) ([]Conversion, error) {
	rows, _ := s.pool.Query(ctx, s.sql.conversions, from, to)
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Conversion, error) {
		var c Conversion
		err := row.Scan(&c.UserID, &c.Plan, &c.At)
		c.At = c.At.UTC()
		return c, err
	})
}

// migrateLockClass is the advisory lock class under which Migrate runs.
const migrateLockClass = 1718775090 // 'frm2'

// Migrate creates the schema if needed and applies the migrations it lacks,
// in one transaction. It is idempotent, and safe when many instances start at
// once: they take turns on an advisory lock.
func (s *PostgresStore) Migrate(ctx context.Context) error {
	ms, err := migrations.Up()
	if err != nil {
		return fmt.Errorf("freemium: migrate: %w", err)
	}
	schema := pgx.Identifier{s.schema}.Sanitize()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", migrateLockClass, s.schema); err != nil {
			return fmt.Errorf("freemium: migrate %s: %w", s.schema, err)
		}
		steps := []string{
			"CREATE SCHEMA IF NOT EXISTS " + schema,
			"SET LOCAL search_path TO " + schema,
			`CREATE TABLE IF NOT EXISTS schema_migrations (
				version    integer     PRIMARY KEY,
				name       text        NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`,
		}
		for _, sql := range steps {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("freemium: migrate %s: %w", s.schema, err)
			}
		}
		var applied int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&applied); err != nil {
			return fmt.Errorf("freemium: migrate %s: %w", s.schema, err)
		}
		for _, m := range ms {
			if m.Version <= applied {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("freemium: migrate %s: %s: %w", s.schema, m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
				return fmt.Errorf("freemium: migrate %s: %s: %w", s.schema, m.Name, err)
			}
		}
		return nil
	})
}

// Enqueue implements Store.
func (s *PostgresStore) Enqueue(ctx context.Context, n Notification, windowStart time.Time, deliver bool, now time.Time) (bool, error) {
	usage, err := json.Marshal(n.Usage)
	if err != nil {
		return false, err
	}
	state := DeliveryNone
	if deliver {
		state = DeliveryPending
	}
	var added bool
	err = s.pool.QueryRow(ctx, s.sql.enqueue, n.ID, n.UserID, string(n.Kind), int16(kindBit(n.Kind)), windowStart,
		usage, n.UpgradeURL, n.CreatedAt, string(state), now).Scan(&added)
	return added, err
}

// ClaimNotifications implements Store.
func (s *PostgresStore) ClaimNotifications(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Outbound, error) {
	rows, _ := s.pool.Query(ctx, s.sql.claim, now, limit, lease.Microseconds())
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Outbound, error) {
		var o Outbound
		var usage []byte
		if err := row.Scan(&o.ID, &o.UserID, &o.Kind, &usage, &o.UpgradeURL, &o.CreatedAt, &o.Attempts, &o.ClaimedUntil); err != nil {
			return o, err
		}
		o.CreatedAt, o.ClaimedUntil = o.CreatedAt.UTC(), o.ClaimedUntil.UTC()
		return o, json.Unmarshal(usage, &o.Usage)
	})
	slices.SortFunc(out, func(a, b Outbound) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, err
}

// FinishNotification implements Store.
func (s *PostgresStore) FinishNotification(ctx context.Context, id string, o Outcome, now time.Time) error {
	_, err := s.pool.Exec(ctx, s.sql.finish, id, string(o.State), o.MessageID, o.Retry, o.Error, now, o.Claim)
	return err
}

// Notifications implements Store.
func (s *PostgresStore) Notifications(ctx context.Context, from, to time.Time) ([]NotificationRecord, error) {
	rows, _ := s.pool.Query(ctx, s.sql.notifications, from, to)
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (NotificationRecord, error) {
		var r NotificationRecord
		var usage []byte
		var sentAt pgtype.Timestamptz
		if err := row.Scan(&r.ID, &r.UserID, &r.Kind, &usage, &r.UpgradeURL, &r.CreatedAt, &r.State,
			&r.Attempts, &r.MessageID, &sentAt, &r.LastError); err != nil {
			return r, err
		}
		r.CreatedAt, r.SentAt = r.CreatedAt.UTC(), pgTime(sentAt)
		return r, json.Unmarshal(usage, &r.Usage)
	})
}
