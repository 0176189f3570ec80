package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/freemiumkit/freemium"
)

// Config configures a Store.
type Config struct {
	// Schema holds the store's tables and functions: lower-case letters,
	// digits and underscores, starting with a letter or underscore, at most
	// 63 bytes, not starting with pg_ (Postgres reserves it), and neither
	// public nor information_schema (schemas every database has, which the
	// store's tables would share with others). Default "freemium".
	Schema string
}

// Store is a freemium.Store in Postgres, through a pgx pool. Every operation
// is one statement, so one round trip, in the common case. The user's
// account row holds the sum of the live holds and the usage of the user's
// latest window; older windows have a row each. So Load reads two rows by
// primary key (account and subscription mirror), Reserve decides on the
// account row and adds the reservation, and Commit of the user's latest
// hold writes the account row alone. Any number of app instances may share
// the database under READ COMMITTED. Holds are committed without waiting
// for the WAL flush (they expire anyway); recorded usage, mirrors and
// notifications are durable. Safe for simultaneous use.
//
// Each Store is one instance: it judges the expiry of the holds it
// placed by the now its Gate gives it, and other instances' holds by the
// database's clock, their TTL after their Reserve. So an instance whose
// clock is ahead never ends another's holds early, and a Commit or Cancel
// gives back exactly its hold's tokens, whatever the clocks. An instance
// whose clock is behind may count another's expired holds up to the
// difference longer. Gates that share one Store should share one
// clock.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	// instance identifies this Store in the holds it places: it
	// judges their expiry by its clock, and other instances' by the
	// database's.
	instance int64
	sql      struct {
		load, loadSlow                                                 string
		reserve, reserveEvery, reserveFirst, reserveEveryFirst         string
		reserveCreate, reserveLock, reserveRecount, reserveSlow, prune string
		commit, commitFirst, commitSlow, cancel                        string
		record, recordSlow, createAccount, lockAccount, markFirst      string
		lockSubscriptions, putSubscriptions, putConversion             string
		linkCustomer, customerUser, conversions                        string
		enqueue, claim, finish, notifications                          string
		outboxStats, outboxList, retryNotification                     string
		credits, recountCredits, spend, grant, revoke, adjust, ledger  string
		topUps                                                         string
	}
}

var _ freemium.Store = (*Store)(nil)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// New returns a Store on pool. cfg may be nil for the
// defaults. Call Migrate (or apply Migrations) before use.
func New(pool *pgxpool.Pool, cfg *Config) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgstore: New: pool is nil: pass a *pgxpool.Pool from pgxpool.New")
	}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Schema == "" {
		c.Schema = "freemium"
	}
	if strings.HasPrefix(c.Schema, "pg_") {
		return nil, fmt.Errorf("pgstore: Config.Schema %q starts with pg_, which Postgres reserves: choose another name", c.Schema)
	}
	if c.Schema == "public" || c.Schema == "information_schema" {
		return nil, fmt.Errorf("pgstore: Config.Schema %q is a schema every database has, shared with other tables: choose a schema of the store's own, such as \"freemium\"", c.Schema)
	}
	if !schemaName.MatchString(c.Schema) {
		return nil, fmt.Errorf("pgstore: Config.Schema %q is not a plain identifier: use lower-case letters, digits and underscores, at most 63 bytes", c.Schema)
	}
	s := &Store{pool: pool, schema: c.Schema, instance: rand.Int64()}
	schema := pgx.Identifier{c.Schema}.Sanitize()
	s.sql.load = statement(loadSQL, schema, "", "", "$2")
	s.sql.loadSlow = instance(statement(loadSlowSQL, schema, "", "", "$3"), "$4")
	// For a plan without a free first report no hold claims it, and the
	// statements spell the claim as false, which Postgres folds away.
	noClaim := strings.ReplaceAll(reserveSQL, "{claim}", "($5 AND false)")
	s.sql.reserve = instance(statement(noClaim, schema, "$6", "", "$8"), "$9")
	s.sql.reserveEvery = instance(statement(noClaim, schema, "", "$6", "$8"), "$9")
	s.sql.reserveFirst = instance(statement(reserveSQL, schema, "$6", "", "$8"), "$9")
	s.sql.reserveEveryFirst = instance(statement(reserveSQL, schema, "", "$6", "$8"), "$9")
	s.sql.reserveCreate = statement(reserveCreateSQL, schema, "", "", "")
	s.sql.reserveLock = statement(reserveLockSQL, schema, "", "", "")
	s.sql.reserveRecount = instance(statement(reserveRecountSQL, schema, "", "", "$2"), "$3")
	s.sql.reserveSlow = instance(statement(reserveSlowSQL, schema, "$6", "$9", "$8"), "$10")
	s.sql.prune = statement(pruneSQL, schema, "", "", "")
	s.sql.commit = statement(strings.NewReplacer("{first}", "", "{first_guard}", "NOT a.last_first").Replace(commitSQL),
		schema, "", "", "")
	s.sql.commitFirst = statement(strings.NewReplacer("{first}", ", {release_first}, first_report_used = true",
		"{first_guard}", "a.last_first").Replace(commitSQL), schema, "", "", "")
	s.sql.commitSlow = statement(commitSlowSQL, schema, "", "", "")
	s.sql.cancel = statement(cancelSQL, schema, "", "", "")
	s.sql.lockAccount = statement(lockAccountSQL, schema, "", "", "")
	s.sql.record = statement(recordSQL, schema, "$2", "$3", "$6")
	s.sql.recordSlow = statement(recordSlowSQL, schema, "$2", "$3", "$6")
	s.sql.createAccount = statement(createAccountSQL, schema, "", "", "")
	s.sql.markFirst = statement(markFirstSQL, schema, "", "", "")
	s.sql.lockSubscriptions = statement(lockSubscriptionsSQL, schema, "", "", "")
	s.sql.putSubscriptions = statement(putSubscriptionsSQL, schema, "", "", "")
	s.sql.putConversion = statement(putConversionSQL, schema, "", "", "")
	s.sql.linkCustomer = statement(linkCustomerSQL, schema, "", "", "")
	s.sql.customerUser = statement(customerUserSQL, schema, "", "", "")
	s.sql.conversions = statement(conversionsSQL, schema, "", "", "")
	s.sql.enqueue = statement(enqueueSQL, schema, "", "", "")
	s.sql.claim = statement(claimSQL, schema, "", "", "")
	s.sql.finish = statement(finishSQL, schema, "", "", "")
	s.sql.notifications = statement(notificationsSQL, schema, "", "", "")
	s.sql.outboxStats = statement(outboxStatsSQL, schema, "", "", "")
	s.sql.outboxList = statement(outboxListSQL, schema, "", "", "")
	s.sql.retryNotification = statement(retryNotificationSQL, schema, "", "", "")
	s.sql.credits = statement(creditsSQL, schema, "", "", "$2")
	s.sql.recountCredits = statement(recountCreditsSQL, schema, "", "", "$2")
	s.sql.spend = statement(spendSQL, schema, "", "", "$2")
	s.sql.grant = statement(grantSQL, schema, "", "", "$6")
	s.sql.revoke = statement(revokeSQL, schema, "", "", "$4")
	s.sql.adjust = statement(adjustSQL, schema, "$2", "$3", "$6")
	s.sql.ledger = statement(ledgerSQL, schema, "", "", "")
	s.sql.topUps = statement(topUpsSQL, schema, "", "", "")
	return s, nil
}

// statement fills in a statement template: {s} is the schema; {start},
// {every} (µs) and {now} are the statement's placeholders for the window
// (a statement for one kind of window leaves the other's empty); the
// fragments below are spelled out in their terms, about the account row
// "a".
func statement(tmpl, schema, start, every, now string) string {
	// The start of the user's window: Every windows from the anchor (now,
	// for a user without a row), fixed windows as given. A now before the
	// anchor (a clock behind the instance that anchored the user) is in the
	// first window.
	windowStart := "(CASE WHEN {every}::bigint > 0 THEN {binned} ELSE {start}::timestamptz END)"
	switch {
	case every == "":
		windowStart = "{start}::timestamptz"
	case start == "":
		windowStart = "{binned}"
	}
	fragments := strings.NewReplacer(
		"{window_start}", windowStart,
		"{binned}", "date_bin({every} * interval '1 microsecond', greatest({now}::timestamptz, a.anchor), coalesce(a.anchor, {now}))",
		// Whether the account's held is the sum of its live holds: no
		// counted hold can have expired yet.
		"{exact}", "(a.held = 0 OR a.held_until > {now})",
		// The account's held, as a bigint.
		"{held}", "least(a.held, {max})::bigint",
		// Reserve's reading of the window's usage from the account's
		// latest window: zero for a newer window, NULL for an older one
		// (the fast Reserve's WHERE excludes those).
		"{latest_used}", "CASE WHEN a.latest_start IS NULL OR a.latest_start < {window_start} THEN 0 "+
			"WHEN a.latest_start = {window_start} THEN a.latest_used END",
		// Whether the account's credits are the sum of its live grants: no
		// counted grant can have expired yet.
		"{credits_exact}", "(a.credits = 0 OR a.credits_until IS NULL OR a.credits_until > {now})",
		// The account's credits counted again from the statement's CTE
		// credit_rows (remaining, expires_at): the grants as the statement
		// leaves them.
		"{count_credits}", `(credits, credits_until) = (
		SELECT least(coalesce(sum(c.remaining), 0), {max})::bigint, min(c.expires_at) FROM credit_rows c
		WHERE c.remaining > 0 AND (c.expires_at IS NULL OR c.expires_at > {now}::timestamptz))`,
		// Whether Reserve's hold claims the first report.
		"{claim}", "($5 AND NOT a.first_report_used AND NOT coalesce(a.first_held_until > $8, false))",
		// The window's usage for Reserve: from the account, or for an
		// older window from the statement's CTE older (its usage row).
		"{used}", "coalesce({latest_used}, (SELECT o.used FROM older o), 0)",
		"{notified}", "coalesce(CASE WHEN a.latest_start = {window_start} THEN a.latest_notified END, (SELECT o.notified FROM older o), 0)",
		// The slow Reserve's update of the account row: the admission
		// rule (see Hold), evaluated once, decides whether the hold joins
		// the sum and claims the first report.
		"{place_hold}", `(anchor, held, held_until, first_hold, first_held_until,
		last_hold, last_tokens, last_expires, last_start, last_first, last_committed, committed_prev) = (
		SELECT coalesce(a.anchor, $8), a.held + CASE WHEN v.ok THEN $3::bigint ELSE 0 END,
		       CASE WHEN v.ok THEN least(a.held_until, $7) ELSE a.held_until END,
		       CASE WHEN v.ok AND v.claim THEN $1 ELSE a.first_hold END,
		       CASE WHEN v.ok AND v.claim THEN $7 ELSE a.first_held_until END,
		       CASE WHEN v.ok THEN $1 ELSE a.last_hold END,
		       CASE WHEN v.ok THEN $3::bigint ELSE a.last_tokens END,
		       CASE WHEN v.ok THEN $7::timestamptz ELSE a.last_expires END,
		       CASE WHEN v.ok THEN {window_start} ELSE a.last_start END,
		       CASE WHEN v.ok THEN v.claim ELSE a.last_first END,
		       a.last_committed AND NOT v.ok,
		       CASE WHEN NOT v.ok THEN a.committed_prev WHEN a.last_committed THEN a.last_hold END
		FROM (SELECT c.claim OR $4::bigint < 0 OR c.used::numeric + a.held + $3::bigint <= `+room("c.used")+` AS ok, c.claim
		      FROM (SELECT {claim} AS claim, {used} AS used) c) v)`,
		// The slow Reserve's answer, from the row after it: the state as it was
		// before the hold, and whether it placed one and claimed the first
		// report.
		"{reserved_before}", "least(a.held - CASE WHEN a.last_hold = $1 THEN $3::bigint ELSE 0 END, {max})::bigint AS reserved, "+
			"a.first_report_used, coalesce(a.first_hold <> $1 AND a.first_held_until > $8, false) AS first_held, "+
			"coalesce(a.last_hold = $1, false) AS admitted, coalesce(a.first_hold = $1, false) AS first",
		// The fast Reserve's record of its hold as the account's latest
		// (the slow one's is in {place_hold}): the latest hold before it,
		// if Commit recorded that on the account row alone, is carried on
		// in committed_prev.
		"{place_last}", `last_hold = $1, last_tokens = $3, last_expires = $7, last_start = {window_start},
		last_first = {claim}, last_committed = false, committed_prev = CASE WHEN a.last_committed THEN a.last_hold END`,
		// Reserve's record of an admitted hold.
		"{reservation}", `res AS (
	INSERT INTO {s}.reservations (id, user_id, period_start, first_report, expires_at, tokens, committed_prev,
		placed_by, db_expires, lim)
	SELECT $1, $2, ws, first, $7, $3, committed_prev, {me}, statement_timestamp() + ($7::timestamptz - {now}::timestamptz), $4
	FROM acct WHERE admitted
)`,
		// Whether held reservation r still counts at {now}, for the
		// instance {me}: by its clock for the holds it placed (and those
		// placed_by NULL), by the database's for the others',
		// so that no instance's clock ahead ends another's holds early.
		"{live}", `(CASE WHEN r.placed_by IS NULL OR r.placed_by = {me} THEN r.expires_at > {now}::timestamptz
	ELSE r.db_expires > statement_timestamp() END)`,
		// The expiry of r, as {me}'s clock will tell it.
		"{expiry}", `(CASE WHEN r.placed_by IS NULL OR r.placed_by = {me} THEN r.expires_at
	ELSE r.db_expires + ({now}::timestamptz - statement_timestamp()) END)`,
		// Whether reservation r, held by its row, is committed all the
		// same: it is the latest hold of its account (the row "a"), and
		// Commit recorded it there alone; or a later hold of its user
		// carries that on.
		"{committed_elsewhere}", `((a.last_committed AND coalesce(a.last_hold = r.id, false))
	OR EXISTS (SELECT 1 FROM {s}.reservations n WHERE n.user_id = r.user_id AND n.committed_prev = r.id))`,
		// Whether reservation r still holds its tokens, expired or not.
		"{held_by}", "(r.row_state = 'held' AND NOT {committed_elsewhere})",
		// Commit's and Cancel's release of hold r (of reservations), or of
		// the account's latest hold for Commit's fast statement, on the
		// account row: its tokens leave the sum if they still count there,
		// and {release_first} gives back its first-report claim.
		"{release}", release("r.tokens")+", {release_first}",
		"{release_last}", release("a.last_tokens"),
		"{release_first}", "first_hold = CASE WHEN a.first_hold = $1 THEN NULL ELSE a.first_hold END, "+
			"first_held_until = CASE WHEN a.first_hold = $1 THEN NULL ELSE a.first_held_until END",
		// A write of usage to a window, under the account row's lock: the
		// statement's CTE src gives the user, the window's start ws, and the
		// tokens (negative: taken off, down to zero) and notification bits
		// to add. cur is the account row as locked, place where the window
		// is: 1 newer than the latest (the latest moves to its usage row,
		// and the window becomes the latest), 0 the latest, -1 older (its
		// usage row takes the write); and the window's usage before and
		// after the write. {write_latest} is then the account row's part of
		// the write.
		"{write_usage}", `at AS (
	SELECT a.user_id, a.latest_start, a.latest_used, a.latest_notified, src.ws, src.tokens, src.bits,
	       CASE WHEN a.latest_start IS NULL OR a.latest_start < src.ws THEN 1
	            WHEN a.latest_start = src.ws THEN 0 ELSE -1 END AS place
	FROM src JOIN {s}.accounts a ON a.user_id = src.user_id
), was AS (
	SELECT at.*, CASE place WHEN 1 THEN 0 WHEN 0 THEN latest_used ELSE coalesce(
	           (SELECT u.used FROM {s}.usage_windows u WHERE u.user_id = at.user_id AND u.period_start = at.ws), 0) END AS before
	FROM at
), cur AS (
	SELECT was.*, greatest(least(before::numeric + tokens, {max}), 0)::bigint AS after FROM was
), moved AS (
	INSERT INTO {s}.usage_windows (user_id, period_start, used, notified)
	SELECT user_id, latest_start, latest_used, latest_notified FROM cur WHERE place = 1 AND latest_start IS NOT NULL
	ON CONFLICT (user_id, period_start) DO UPDATE SET used = excluded.used, notified = excluded.notified
), older AS (
	INSERT INTO {s}.usage_windows AS u (user_id, period_start, used, notified)
	SELECT user_id, ws, after, bits FROM cur WHERE place = -1
	ON CONFLICT (user_id, period_start) DO UPDATE SET used = excluded.used, notified = u.notified | excluded.notified
)`,
		// What a write of usage in cur owes the grants (see toSpend): for
		// Commit's hold r, and for Record's limit $7.
		"{hold_to_spend}", toSpend("r.first_report", "coalesce(r.lim, -1)"),
		"{record_to_spend}", toSpend("false", "$7::bigint"),
		"{write_latest}", `latest_start = CASE WHEN cur.place = 1 THEN cur.ws ELSE a.latest_start END,
		latest_used = CASE WHEN cur.place >= 0 THEN cur.after ELSE a.latest_used END,
		latest_notified = CASE cur.place WHEN 1 THEN cur.bits
			WHEN 0 THEN a.latest_notified | cur.bits ELSE a.latest_notified END`,
	)
	params := strings.NewReplacer("{s}", schema, "{start}", start, "{every}", every, "{now}", now,
		"{max}", "9223372036854775807")
	// Until nothing changes: a fragment may use others.
	for expanded := fragments.Replace(tmpl); expanded != tmpl; expanded = fragments.Replace(tmpl) {
		tmpl = expanded
	}
	return params.Replace(tmpl)
}

// room is how far usage may go for Reserve, in a window with usage used
// (an SQL expression) for limit $4: the limit, or for a user with credits
// the allowance left and the credits (see freemium.Hold).
func room(used string) string {
	return "CASE WHEN a.credits > 0 THEN greatest($4::bigint, " + used + ") + a.credits ELSE $4::bigint END"
}

// toSpend sets the account's to_spend to what a write of usage in cur
// owes the grants, for a hold of limit lim admitted as the first report or
// not (first), both SQL expressions: the part past max(lim, before)
// (freemium.SpendFromGrants), when the account has credits. spendSQL,
// next in the transaction, takes it from the grants.
func toSpend(first, lim string) string {
	return "to_spend = CASE WHEN a.credits > 0 AND NOT " + first + " AND " + lim + " >= 0 " +
		"THEN greatest(cur.after - greatest(" + lim + ", cur.before), 0) ELSE 0 END"
}

// instance fills in {me}, the placeholder of the instance's ID
// (Store.instance), in a statement.
func instance(sql, me string) string {
	return strings.ReplaceAll(sql, "{me}", me+"::bigint")
}

// release takes a hold of tokens (an SQL expression) out of the account row
// a's sum. A hold's tokens are what it added to the sum, or 0 once Cancel
// or a recount took it out; so a hold gives back what it added, whatever
// the clocks of the instances that placed, recounted and ended it.
func release(tokens string) string {
	return "held = a.held - " + tokens + ", held_until = CASE WHEN a.held = " + tokens + " THEN NULL ELSE a.held_until END"
}

// Every statement that writes takes rows in one order: the account row,
// then the reservation or idempotency key, then usage rows. So none can
// deadlock another. The account row is the truth for the latest window,
// and older windows' usage rows are written only under its lock; so a
// statement that holds it reads both as they are.

// loadSQL reads a user's account and subscription mirror, two rows by
// primary key: $1 user, $2 now. The account row carries what a check needs:
// the sum of the holds (reserved is NULL when it may count an expired hold:
// Load then sums the live ones with loadSlowSQL) and the latest window's
// usage, which is the window's, or older than the window (no usage in it
// yet), in the common case; and the credits (credits_until NULL when they
// may count an expired grant: Load then counts them with creditsSQL).
const loadSQL = `
SELECT a.anchor, a.first_report_used, CASE WHEN a.held IS NULL THEN 0 WHEN {exact} THEN {held} END, a.first_held_until,
       s.customer_id, s.subs, s.pulled_as_of, s.synced_at, s.version,
       a.latest_start, a.latest_used, a.latest_notified, a.credits, a.credits_until
FROM (SELECT 1) one
LEFT JOIN {s}.accounts a ON a.user_id = $1
LEFT JOIN {s}.subscriptions s ON s.user_id = $1`

// loadSlowSQL reads one window's usage and the live holds: $1 user, $2
// start, $3 now, $4 the instance. Load falls back on it for a window older than the user's
// latest, or when a counted hold may have expired.
const loadSlowSQL = `
SELECT CASE WHEN a.latest_start = $2 THEN a.latest_used ELSE coalesce(u.used, 0) END,
       CASE WHEN a.latest_start = $2 THEN a.latest_notified ELSE coalesce(u.notified, 0) END,
       CASE WHEN a.held IS NULL THEN 0 WHEN {exact} THEN {held} ELSE
           (SELECT least(coalesce(sum(r.tokens), 0), {max})::bigint FROM {s}.reservations r
            WHERE r.user_id = $1 AND {held_by} AND {live}) END
FROM (SELECT 1) one
LEFT JOIN {s}.accounts a ON a.user_id = $1
LEFT JOIN {s}.usage_windows u ON u.user_id = $1 AND u.period_start = $2`

// reserveSQL checks and holds in one statement, in the common case: $1
// id, $2 user, $3 tokens, $4 limit (< 0: Unlimited), $5 first report free,
// $6 the window's start (a fixed window) or length (µs, reserveEvery), $7
// expires, $8 now, $9 the instance, $10 the mirror's version the plan was
// decided on (Hold.Mirror; 0: none).
//
// It updates the account row, and so decides on its latest version, locked,
// alone, in the window of the row's anchor: the row's latest window's usage
// is the window's usage when the window is that one, and zero when the
// window is newer; held is the holds' sum. The hold joins the sum
// when the admission rule (see Hold) admits it, becomes the account's
// latest hold (for the fast Commit) and gets its reservation row, and the
// row comes back with the state before the hold. No row comes back
// otherwise: for a refusal,
// a user without an account row, a window older than the latest (a return
// to an earlier plan's window), or a sum that may count an expired hold.
// Reserve then takes the slow path (reserveSlow), which decides in every
// case. The statement is kept small on purpose: each expression in it is
// built anew on every call, which is most of its cost.
var reserveSQL = `
WITH acct AS (
	UPDATE {s}.accounts a SET anchor = coalesce(a.anchor, $8), held = a.held + $3::bigint, held_until = least(a.held_until, $7),
		first_hold = CASE WHEN {claim} THEN $1 ELSE a.first_hold END,
		first_held_until = CASE WHEN {claim} THEN $7::timestamptz ELSE a.first_held_until END, {place_last}
	WHERE a.user_id = $2 AND {exact} AND {credits_exact} AND (a.latest_start IS NULL OR a.latest_start <= {window_start})
	  AND ($10::bigint = 0 OR $10::bigint = (SELECT m.version FROM {s}.subscriptions m WHERE m.user_id = $2))
	  AND ({claim} OR $4::bigint < 0 OR ({latest_used})::numeric + a.held + $3::bigint <= ` + room("({latest_used})") + `)
	RETURNING {window_start} AS ws, ({latest_used}) AS used,
	          CASE WHEN a.latest_start = {window_start} THEN a.latest_notified ELSE 0 END AS notified,
	          least(a.held - $3::bigint, {max})::bigint AS reserved, a.first_report_used,
	          coalesce(a.first_hold <> $1 AND a.first_held_until > $8, false) AS first_held,
	          true AS admitted, coalesce(a.first_hold = $1, false) AS first, a.committed_prev, a.credits, a.credits_until
), {reservation}
SELECT ws, used, notified, reserved, first_report_used, first_held, admitted, first, credits, credits_until,
       -- A hold need not survive a crash (it expires anyway): this
       -- transaction does not wait for the WAL flush. Commit, which records
       -- usage, does.
       set_config('synchronous_commit', 'off', true) IS NOT NULL
FROM acct`

// Reserve's slow path, for a user whose held may count an expired hold, or
// for a window older than the latest: a batch of statements, sent at once
// and run in one transaction (pgx sends a batch with one Sync, so Postgres
// runs it as one implicit transaction). In READ COMMITTED each statement
// reads what committed before it began, so once the account row is locked
// the next statements see every hold placed before.

// reserveCreateSQL adds the account row of a user without one (unanchored:
// the Reserve anchors it): $1 user.
const reserveCreateSQL = `INSERT INTO {s}.accounts (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING`

// reserveLockSQL locks the account row: $1 user. Holds need not be
// durable: the transaction does not wait for the WAL flush.
const reserveLockSQL = `
SELECT set_config('synchronous_commit', 'off', true) FROM {s}.accounts WHERE user_id = $1 FOR UPDATE`

// reserveRecountSQL sets a locked account's held to the sum of its live
// holds, when it may count an expired one: $1 user, $2 now, $3 the
// instance. The holds it drops give their tokens up (dropped; the
// account's last_tokens too, for the latest hold), so that their Commit
// or Cancel gives nothing back; held_until becomes the earliest expiry of
// the rest by this instance's clock.
const reserveRecountSQL = `
WITH dropped AS (
	UPDATE {s}.reservations r SET tokens = 0
	FROM {s}.accounts a
	WHERE a.user_id = $1::text AND r.user_id = $1 AND NOT {exact} AND r.tokens > 0 AND {held_by} AND NOT {live}
	RETURNING r.id
)
UPDATE {s}.accounts a SET (held, held_until) = (
	SELECT coalesce(sum(r.tokens::numeric), 0), min({expiry}) FROM {s}.reservations r
	WHERE r.user_id = $1 AND {held_by} AND {live}),
	last_tokens = CASE WHEN a.last_hold IN (SELECT id FROM dropped) THEN 0 ELSE a.last_tokens END
WHERE a.user_id = $1 AND NOT {exact}`

// reserveSlowSQL decides on the locked account row, and answers as
// reserveSQL does, with a row also for a refusal: $1 id, $2 user, $3
// tokens, $4 limit (< 0: Unlimited), $5 first report free, $6 start, $7
// expires, $8 now, $9 every (µs), $10 the instance, $11 Hold.Mirror. The
// account's held is exact now, and an older window's usage row is as the
// lock left it. No row comes back when the mirror is no longer the one the
// hold was decided on.
const reserveSlowSQL = `
WITH older AS (
	SELECT u.used, u.notified FROM {s}.accounts a, {s}.usage_windows u
	WHERE a.user_id = $2::text AND u.user_id = $2 AND u.period_start = {window_start} AND {window_start} < a.latest_start
), acct AS (
	UPDATE {s}.accounts a SET {place_hold}
	WHERE a.user_id = $2 AND ($11::bigint = 0 OR $11::bigint = (SELECT m.version FROM {s}.subscriptions m WHERE m.user_id = $2))
	RETURNING {window_start} AS ws, {used} AS used, {notified} AS notified, {reserved_before}, a.committed_prev,
	          a.credits, a.credits_until
), {reservation}
SELECT ws, used, notified, reserved, first_report_used, first_held, admitted, first, credits, credits_until, NULL
FROM acct`

// commitSQL records the usage of the account's latest hold in one
// statement, on the account row alone: $1 id, $2 tokens, $3 user, $4 now,
// $5 the retention (µs). The hold stays held in its reservation row;
// last_committed says it is committed (see accounts.last_committed in the
// migration). It answers a row only when the hold is the user's latest,
// neither committed nor canceled, placed in the latest window, not past
// its expiry plus the retention, of the statement's kind ({first_guard}:
// admitted as the first report or not), and the user has no credits (to
// spend from): else it writes nothing, and the
// slow path (commitSlowSQL) decides. {first} is the commitFirst
// statement's first-report columns, empty for commit (the statement is
// kept small: each expression in it costs on every call).
const commitSQL = `
UPDATE {s}.accounts a SET {release_last}{first}, latest_used = least(a.latest_used::numeric + $2::bigint, {max})::bigint,
	last_committed = true
WHERE a.user_id = $3::text AND a.last_hold = $1::text AND NOT a.last_committed AND a.latest_start = a.last_start
  AND a.last_expires >= $4::timestamptz - $5::bigint * interval '1 microsecond' AND {first_guard} AND a.credits = 0
RETURNING true`

// Commit's slow path and Cancel are a batch (see Store.batch):
// lockAccountSQL locks the account row of the user the HoldRef names, and
// the next statement, which reads what committed before it began, writes,
// only if the hold is that user's. Either one that ends the account's
// latest hold clears last_hold, so that the fast Commit no longer takes
// it.

// commitSlowSQL records a hold's usage: $1 id, $2 tokens, $3 now, $4 the
// hold's user, $5 the retention (µs), and leaves what it owes the grants in
// the account's to_spend, for spendSQL next. It returns whether the
// reservation is known for the user.
const commitSlowSQL = `
WITH r AS (
	UPDATE {s}.reservations r SET row_state = 'committed'
	FROM {s}.accounts a
	WHERE r.id = $1::text AND r.user_id = $4::text AND a.user_id = $4 AND r.row_state <> 'committed' AND NOT {committed_elsewhere}
	  AND r.expires_at >= $3::timestamptz - $5::bigint * interval '1 microsecond'
	RETURNING r.user_id, r.period_start, r.first_report, r.tokens, r.expires_at, r.lim
), src AS (
	SELECT user_id, period_start AS ws, $2::bigint AS tokens, 0::smallint AS bits FROM r
), {write_usage}, acct AS (
	UPDATE {s}.accounts a SET {release}, first_report_used = a.first_report_used OR r.first_report, {write_latest},
		last_hold = nullif(a.last_hold, $1), {hold_to_spend}
	FROM cur, r WHERE a.user_id = cur.user_id
)
SELECT EXISTS (SELECT 1 FROM r)
    OR EXISTS (SELECT 1 FROM {s}.reservations WHERE id = $1 AND user_id = $4 AND expires_at >= $3::timestamptz - $5::bigint * interval '1 microsecond')`

// cancelSQL ends a held hold: $1 id, $2 now, $3 the hold's user, $4 the
// retention (µs). It
// returns whether the reservation is known for the user. The hold's tokens become 0, so that a Commit after
// it gives nothing back to the sum.
const cancelSQL = `
WITH cfg AS (
	SELECT set_config('synchronous_commit', 'off', true) AS v -- holds need not be durable
), held AS (
	UPDATE {s}.reservations r SET row_state = 'canceled', tokens = 0
	FROM {s}.reservations o, {s}.accounts a
	WHERE r.id = $1::text AND o.id = $1 AND r.user_id = $3::text AND a.user_id = $3 AND {held_by}
	  AND r.expires_at >= $2::timestamptz - $4::bigint * interval '1 microsecond'
	RETURNING r.user_id, o.tokens, r.expires_at
), acct AS (
	UPDATE {s}.accounts a SET {release}, last_hold = nullif(a.last_hold, $1) FROM held r WHERE a.user_id = r.user_id
)
SELECT (SELECT v FROM cfg) IS NOT NULL
   AND (EXISTS (SELECT 1 FROM held)
        OR EXISTS (SELECT 1 FROM {s}.reservations WHERE id = $1 AND user_id = $3 AND expires_at >= $2::timestamptz - $4::bigint * interval '1 microsecond'))`

// recordSQL adds usage, once per non-empty key, in one statement: $1
// user, $2 start, $3 every (µs), $4 tokens, $5 key, $6 now. It locks the
// account row first, only when the window is the user's latest, the user
// has no credits (to spend from) and the key is not recorded: then it
// answers true. A recorded key answers true and
// writes nothing. Otherwise it writes nothing and answers false, for the
// slow path (recordSlowSQL); and when a racing Record recorded the key
// after this one took the account row, raise_retry undoes the statement.
const recordSQL = `
WITH acct AS (
	UPDATE {s}.accounts a SET latest_used = least(a.latest_used::numeric + $4::bigint, {max})::bigint
	WHERE a.user_id = $1::text AND a.anchor IS NOT NULL AND a.latest_start = {window_start} AND a.credits = 0
	  AND ($5::text = '' OR NOT EXISTS (SELECT 1 FROM {s}.usage_keys k WHERE k.user_id = $1 AND k.key = $5))
	RETURNING 1
), k AS (
	INSERT INTO {s}.usage_keys (user_id, key, tokens, recorded_at)
	SELECT $1, $5, $4, $6::timestamptz FROM acct WHERE $5 <> ''
	ON CONFLICT DO NOTHING
	RETURNING 1
)
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM acct)
            THEN $5 <> '' AND EXISTS (SELECT 1 FROM {s}.usage_keys k WHERE k.user_id = $1 AND k.key = $5)
            WHEN $5 = '' OR EXISTS (SELECT 1 FROM k) THEN true
            ELSE {s}.raise_retry('freemium: record: a racing Record recorded the key') END`

// Record's slow path is a batch: createAccountSQL, lockAccountSQL,
// recordSlowSQL, then spendSQL.

// createAccountSQL anchors a user at their first activity: $1 user, $2 now.
const createAccountSQL = `
INSERT INTO {s}.accounts AS a (user_id, anchor) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET anchor = excluded.anchor WHERE a.anchor IS NULL`

// lockAccountSQL locks a user's account row: $1 user.
const lockAccountSQL = `SELECT FROM {s}.accounts WHERE user_id = $1 FOR UPDATE`

// recordSlowSQL adds usage under the account row's lock, once per
// non-empty key: $1 user, $2 start, $3 every (µs), $4 tokens, $5 key, $6
// now, $7 the limit, and leaves what it owes the grants in the account's
// to_spend.
const recordSlowSQL = `
WITH k AS (
	INSERT INTO {s}.usage_keys (user_id, key, tokens, recorded_at)
	SELECT $1::text, $5::text, $4::bigint, $6::timestamptz WHERE $5 <> ''
	ON CONFLICT DO NOTHING
	RETURNING 1
), src AS (
	SELECT a.user_id, {window_start} AS ws, $4::bigint AS tokens, 0::smallint AS bits
	FROM {s}.accounts a WHERE a.user_id = $1 AND ($5 = '' OR EXISTS (SELECT 1 FROM k))
), {write_usage}, acct AS (
	UPDATE {s}.accounts a SET {write_latest}, {record_to_spend} FROM cur WHERE a.user_id = cur.user_id
)
SELECT`

// markFirstSQL: $1 user, $2 now.
const markFirstSQL = `
INSERT INTO {s}.accounts AS a (user_id, anchor, first_report_used) VALUES ($1, $2, true)
ON CONFLICT (user_id) DO UPDATE SET first_report_used = true, anchor = coalesce(a.anchor, excluded.anchor)
WHERE NOT a.first_report_used OR a.anchor IS NULL`

// lockSubscriptionsSQL locks the user's mirror row, adding it when there is
// none, and reads the mirror: $1 user. PutSubscriptions applies news to it
// in Go (SubscriptionMirror.Apply) and writes it back in one transaction.
const lockSubscriptionsSQL = `
INSERT INTO {s}.subscriptions AS t (user_id) VALUES ($1)
ON CONFLICT (user_id) DO UPDATE SET user_id = t.user_id
RETURNING t.subs, t.pulled_as_of, t.synced_at, t.version`

// putSubscriptionsSQL writes the mirror: $1 user, $2 subscriptions (JSON),
// $3 pulled as of, $4 synced at, $5 its version.
const putSubscriptionsSQL = `
UPDATE {s}.subscriptions SET subs = $2::jsonb, pulled_as_of = $3, synced_at = $4, version = $5 WHERE user_id = $1`

// putConversionSQL: $1 user, $2 plan, $3 when.
const putConversionSQL = `INSERT INTO {s}.conversions (user_id, plan, converted_at) VALUES ($1, $2, $3)`

// linkCustomerSQL: $1 user, $2 customer, $3 now. It returns the user the
// customer belongs to; only when that is $1 does it link and mark the
// mirror for refresh.
const linkCustomerSQL = `
WITH c AS (
	INSERT INTO {s}.customers AS c (customer_id, user_id, linked_at) VALUES ($2, $1, $3)
	ON CONFLICT (customer_id) DO UPDATE SET user_id = c.user_id
	RETURNING c.user_id
), link AS (
	INSERT INTO {s}.subscriptions AS t (user_id, customer_id, version)
	SELECT $1, $2, 1 FROM c WHERE c.user_id = $1
	ON CONFLICT (user_id) DO UPDATE SET customer_id = excluded.customer_id, synced_at = '0001-01-01 00:00:00+00',
		version = t.version + 1
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
// It runs under the account row's lock (reserveCreateSQL adds the row,
// unanchored, for a user with no activity; lockAccountSQL locks it), so of
// racing Enqueues exactly one adds.
const enqueueSQL = `
WITH src AS (
	SELECT a.user_id, $5::timestamptz AS ws, 0::bigint AS tokens, $4::smallint AS bits
	FROM {s}.accounts a LEFT JOIN {s}.usage_windows u ON u.user_id = a.user_id AND u.period_start = $5
	WHERE a.user_id = $2::text AND CASE WHEN a.latest_start = $5 THEN a.latest_notified
	                                    WHEN a.latest_start > $5 THEN coalesce(u.notified, 0::smallint)
	                                    ELSE 0::smallint END & $4 = 0
), {write_usage}, acct AS (
	UPDATE {s}.accounts a SET {write_latest} FROM cur WHERE a.user_id = cur.user_id
), ins AS (
	INSERT INTO {s}.notifications (id, user_id, kind, period_start, usage, upgrade_url, created_at, state, next_attempt_at)
	SELECT $1, $2, $3, $5, $6, $7, $8, $9, $10 FROM src
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

// pruneSQL deletes reservations past their expiry plus the retention, a
// batch at a time: $1 now, $2 the retention (µs). A deleted one that carried an earlier hold's commit (committed_prev)
// hands it to that hold's own row, if it is kept.
const pruneSQL = `
WITH gone AS (
	DELETE FROM {s}.reservations WHERE id IN (
		SELECT id FROM {s}.reservations WHERE expires_at < $1::timestamptz - $2::bigint * interval '1 microsecond'
		ORDER BY expires_at LIMIT 2048 FOR UPDATE SKIP LOCKED)
	RETURNING id, committed_prev
)
UPDATE {s}.reservations r SET row_state = 'committed' FROM gone
WHERE r.id = gone.committed_prev AND r.row_state = 'held' AND r.id NOT IN (SELECT id FROM gone)`

// retention is freemium.HoldRetention in microseconds, as the statements
// that find or prune reservations take it.
var retention = freemium.HoldRetention.Microseconds()

// pruneEvery: about one Reserve in pruneEvery deletes up to 2048 reservations
// past their retention, more than the pruneEvery it adds meanwhile.
const pruneEvery = 512

// Load implements Store.
func (s *Store) Load(ctx context.Context, userID string, now time.Time, window func(freemium.Account) freemium.Window) (freemium.State, error) {
	// Columns of a missing row are NULL: the statement leaves them so,
	// since each expression in it costs on every call, and Go reads them
	// as the zero value.
	var (
		st                                                     freemium.State
		a                                                      = &st.Account
		anchor, firstHeldUntil, pulledAsOf, syncedAt, winStart pgtype.Timestamptz
		firstUsed                                              pgtype.Bool
		customer                                               pgtype.Text
		subs                                                   []byte
		reserved, winUsed, version, credits                    pgtype.Int8
		winNotified                                            pgtype.Int2
		creditsUntil                                           pgtype.Timestamptz
	)
	err := s.pool.QueryRow(ctx, s.sql.load, userID, now).Scan(
		&anchor, &firstUsed, &reserved, &firstHeldUntil,
		&customer, &subs, &pulledAsOf, &syncedAt, &version,
		&winStart, &winUsed, &winNotified, &credits, &creditsUntil)
	if err != nil {
		return freemium.State{}, err
	}
	st.Credits, st.CreditsExpire = credits.Int64, pgTime(creditsUntil)
	if st.Credits > 0 && creditsUntil.Valid && !creditsUntil.Time.After(now) {
		// A grant expired since the credits were counted.
		if st.Credits, st.CreditsExpire, err = s.credits(ctx, userID, now); err != nil {
			return freemium.State{}, err
		}
	}
	st.FirstReportUsed, st.FirstReportHeld = firstUsed.Bool, firstHeldUntil.Valid && firstHeldUntil.Time.After(now)
	a.Anchor, a.CustomerID = pgTime(anchor), customer.String
	if a.Subscriptions, err = pgMirror(subs, pulledAsOf, syncedAt, version.Int64); err != nil {
		return freemium.State{}, err
	}

	st.PeriodStart, st.PeriodEnd = window(*a).Bounds(a.Anchor, now)
	st.PeriodStart = st.PeriodStart.UTC()
	latest := pgTime(winStart)
	switch {
	case !reserved.Valid || (winStart.Valid && st.PeriodStart.Before(latest)):
		// A hold expired unpruned, or a window older than the latest.
		err := s.pool.QueryRow(ctx, s.sql.loadSlow, userID, st.PeriodStart, now, s.instance).Scan(&st.Used, &st.Notified, &st.Reserved)
		if err != nil {
			return freemium.State{}, err
		}
	case winStart.Valid && st.PeriodStart.Equal(latest):
		st.Used, st.Notified, st.Reserved = winUsed.Int64, freemium.NotifiedKinds(winNotified.Int16), reserved.Int64
	default: // a window newer than any with usage
		st.Reserved = reserved.Int64
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
func (s *Store) Reserve(ctx context.Context, h freemium.Hold, now time.Time) (freemium.ReserveResult, error) {
	sql, window := s.sql.reserve, any(h.Window.Start)
	if h.FirstReport {
		sql = s.sql.reserveFirst
	}
	if h.Window.Every > 0 {
		sql, window = s.sql.reserveEvery, h.Window.Every.Microseconds()
		if h.FirstReport {
			sql = s.sql.reserveEveryFirst
		}
	}
	r, err := scanReserve(s.pool.QueryRow(ctx, sql, h.ID, h.UserID, h.Tokens, h.Limit, h.FirstReport, window, h.ExpiresAt, now,
		s.instance, h.Mirror), h)
	if errors.Is(err, pgx.ErrNoRows) {
		// Refused, or a counted hold may have expired, or the window is
		// older than the latest: the slow path.
		r, err = s.reserveSlow(ctx, h, now)
	}
	if err == nil && rand.N(pruneEvery) == 0 {
		// Housekeeping, in a statement of its own so that the hot one
		// keeps a generic plan. A failure is left to the next one.
		_, _ = s.pool.Exec(ctx, s.sql.prune, now, retention)
	}
	return r, err
}

// reserveSlow runs Reserve's slow path: one round trip, one transaction.
func (s *Store) reserveSlow(ctx context.Context, h freemium.Hold, now time.Time) (freemium.ReserveResult, error) {
	var b pgx.Batch
	b.Queue(s.sql.reserveCreate, h.UserID)
	b.Queue(s.sql.reserveLock, h.UserID)
	b.Queue(s.sql.reserveRecount, h.UserID, now, s.instance)
	b.Queue(s.sql.recountCredits, h.UserID, now)
	b.Queue(s.sql.reserveSlow, h.ID, h.UserID, h.Tokens, h.Limit, h.FirstReport, h.Window.Start, h.ExpiresAt, now,
		h.Window.Every.Microseconds(), s.instance, h.Mirror)
	var r freemium.ReserveResult
	err := s.batch(ctx, &b, -1, func(row pgx.Row) (err error) {
		r, err = scanReserve(row, h)
		switch {
		case errors.Is(err, pgx.ErrNoRows) && h.Mirror != 0:
			// The locked account row is there: the mirror moved.
			r, err = freemium.ReserveResult{MirrorMoved: true}, nil
		case errors.Is(err, pgx.ErrNoRows):
			err = errors.New("pgstore: reserve: the user's account row is missing")
		}
		return err
	})
	return r, err
}

// batch sends b, one round trip run as one transaction (pgx sends a batch
// with one Sync, so Postgres runs it as one implicit transaction), and
// passes the row of its statement at (-1: the last) to scan; it runs the
// others, and all of them when scan is nil.
func (s *Store) batch(ctx context.Context, b *pgx.Batch, at int, scan func(pgx.Row) error) error {
	if at < 0 {
		at = b.Len() - 1
	}
	br := s.pool.SendBatch(ctx, b)
	var err error
	for i := 0; i < b.Len() && err == nil; i++ {
		if i == at && scan != nil {
			err = scan(br.QueryRow())
		} else {
			_, err = br.Exec()
		}
	}
	return errors.Join(err, br.Close())
}

// retry reports whether err is raise_retry's: the fast statement found a
// racing write and wrote nothing.
func retry(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "40001" // serialization_failure
}

// scanReserve reads a reserve statement's answer.
func scanReserve(row pgx.Row, h freemium.Hold) (freemium.ReserveResult, error) {
	var r freemium.ReserveResult
	st := &r.State
	var until pgtype.Timestamptz
	err := row.Scan(&st.PeriodStart, &st.Used, &st.Notified, &st.Reserved, &st.FirstReportUsed, &st.FirstReportHeld,
		&r.Admitted, &r.FirstReport, &st.Credits, &until, nil)
	if err != nil {
		return freemium.ReserveResult{}, err
	}
	st.CreditsExpire = pgTime(until)
	st.PeriodStart = st.PeriodStart.UTC()
	st.PeriodEnd = h.Window.EndOf(st.PeriodStart)
	return r, nil
}

// Commit implements Store. It takes one statement when the hold is the
// user's latest, in the latest window: the account row records the rest
// of the hold, and h.FirstReport only picks the statement (the wrong one
// matches no row). Otherwise it takes the slow batch.
func (s *Store) Commit(ctx context.Context, h freemium.HoldRef, tokens int64, now time.Time) error {
	sql := s.sql.commit
	if h.FirstReport {
		sql = s.sql.commitFirst
	}
	var done bool
	err := s.pool.QueryRow(ctx, sql, h.ID, tokens, h.UserID, now, retention).Scan(&done)
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return s.byID(ctx, h.UserID, s.sql.commitSlow, []any{h.ID, tokens, now, h.UserID, retention}, now)
}

// Cancel implements Store.
func (s *Store) Cancel(ctx context.Context, h freemium.HoldRef, now time.Time) error {
	return s.byID(ctx, h.UserID, s.sql.cancel, []any{h.ID, now, h.UserID, retention}, time.Time{})
}

// byID runs a statement on a reservation of the user, $1 its ID, that
// answers whether it is known, under the lock of the user's account row;
// and then, for a statement that records usage (spendAt not zero), the
// spend from grants at spendAt that it left.
func (s *Store) byID(ctx context.Context, userID, sql string, args []any, spendAt time.Time) error {
	var b pgx.Batch
	b.Queue(s.sql.lockAccount, userID)
	b.Queue(sql, args...)
	if !spendAt.IsZero() {
		b.Queue(s.sql.spend, userID, spendAt, freemium.SpendReason)
	}
	var found bool
	if err := s.batch(ctx, &b, 1, func(row pgx.Row) error { return row.Scan(&found) }); err != nil {
		return err
	}
	if !found {
		return freemium.ErrReservationNotFound
	}
	return nil
}

// Record implements Store. It takes one statement when the window is the
// user's latest, and otherwise a batch that anchors a new user first.
func (s *Store) Record(ctx context.Context, userID string, w freemium.Window, limit, tokens int64, key string, now time.Time) error {
	var done bool
	err := s.pool.QueryRow(ctx, s.sql.record, userID, w.Start, w.Every.Microseconds(), tokens, key, now).Scan(&done)
	if (err == nil && done) || (err != nil && !retry(err)) {
		return err
	}
	var b pgx.Batch
	b.Queue(s.sql.createAccount, userID, now)
	b.Queue(s.sql.lockAccount, userID)
	b.Queue(s.sql.recordSlow, userID, w.Start, w.Every.Microseconds(), tokens, key, now, limit)
	b.Queue(s.sql.spend, userID, now, freemium.SpendReason)
	return s.batch(ctx, &b, -1, nil)
}

// MarkFirstReportUsed implements Store.
func (s *Store) MarkFirstReportUsed(ctx context.Context, userID string, now time.Time) error {
	_, err := s.pool.Exec(ctx, s.sql.markFirst, userID, now)
	return err
}

// PutSubscriptions implements Store.
func (s *Store) PutSubscriptions(ctx context.Context, userID string, u freemium.SubscriptionUpdate, now time.Time) (changed, converted bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			subs                 []byte
			pulledAsOf, syncedAt pgtype.Timestamptz
		)
		var version int64
		if err := tx.QueryRow(ctx, s.sql.lockSubscriptions, userID).Scan(&subs, &pulledAsOf, &syncedAt, &version); err != nil {
			return err
		}
		held, err := pgMirror(subs, pulledAsOf, syncedAt, version)
		if err != nil {
			return err
		}
		next, ch, conv := held.Apply(u)
		if changed, converted = ch, conv; !changed {
			return nil
		}
		if subs, err = json.Marshal(pgSubscriptions(next.Subscriptions)); err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(s.sql.putSubscriptions, userID, string(subs), next.PulledAsOf, next.SyncedAt, next.Version)
		if converted {
			at := u.AsOf
			if u.Pulled {
				at = u.SyncedAt
			}
			b.Queue(s.sql.putConversion, userID, u.PaidPlan, at)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	return changed && err == nil, converted && err == nil, err
}

// pgSubscription is a MirroredSubscription as the subs column keeps it.
type pgSubscription struct {
	ID                string    `json:"id"`
	CustomerID        string    `json:"customer_id"`
	PriceIDs          []string  `json:"price_ids"`
	Status            string    `json:"status"`
	PeriodStart       time.Time `json:"period_start"`
	PeriodEnd         time.Time `json:"period_end"`
	CancelAtPeriodEnd bool      `json:"cancel_at_period_end"`
	AsOf              time.Time `json:"as_of"`
	PaidPlan          string    `json:"paid_plan"`
	WasPaid           bool      `json:"was_paid,omitempty"`
}

// pgSubscriptions is subs as the subs column keeps them.
func pgSubscriptions(subs []freemium.MirroredSubscription) []pgSubscription {
	out := make([]pgSubscription, len(subs))
	for i, m := range subs {
		out[i] = pgSubscription{ID: m.ID, CustomerID: m.CustomerID, PriceIDs: m.PriceIDs, Status: string(m.Status),
			PeriodStart: m.CurrentPeriodStart, PeriodEnd: m.CurrentPeriodEnd, CancelAtPeriodEnd: m.CancelAtPeriodEnd,
			AsOf: m.AsOf, PaidPlan: m.PaidPlan, WasPaid: m.WasPaid}
	}
	return out
}

// pgMirror is the mirror the subscriptions row keeps: subs is the subs
// column's JSON (nil for no row).
func pgMirror(subs []byte, pulledAsOf, syncedAt pgtype.Timestamptz, version int64) (freemium.SubscriptionMirror, error) {
	m := freemium.SubscriptionMirror{PulledAsOf: pgTime(pulledAsOf), SyncedAt: pgTime(syncedAt), Version: version}
	if len(subs) <= len("[]") {
		return m, nil
	}
	var rows []pgSubscription
	if err := json.Unmarshal(subs, &rows); err != nil {
		return m, fmt.Errorf("subscription mirror: %w", err)
	}
	m.Subscriptions = make([]freemium.MirroredSubscription, len(rows))
	for i, r := range rows {
		m.Subscriptions[i] = freemium.MirroredSubscription{
			Subscription: freemium.Subscription{ID: r.ID, CustomerID: r.CustomerID, PriceIDs: r.PriceIDs, Status: freemium.SubscriptionStatus(r.Status),
				CurrentPeriodStart: zeroUTC(r.PeriodStart), CurrentPeriodEnd: zeroUTC(r.PeriodEnd), CancelAtPeriodEnd: r.CancelAtPeriodEnd},
			AsOf:     zeroUTC(r.AsOf),
			PaidPlan: r.PaidPlan,
			WasPaid:  r.WasPaid,
		}
	}
	return m, nil
}

// zeroUTC is t in UTC; Go's zero time for the zero time the schema stores.
func zeroUTC(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// LinkCustomer implements Store.
func (s *Store) LinkCustomer(ctx context.Context, userID, customerID string, now time.Time) error {
	var owner string
	if err := s.pool.QueryRow(ctx, s.sql.linkCustomer, userID, customerID, now).Scan(&owner); err != nil {
		return err
	}
	if owner != userID {
		return freemium.ErrCustomerLinked
	}
	return nil
}

// CustomerUser implements Store.
func (s *Store) CustomerUser(ctx context.Context, customerID string) (string, error) {
	var user string
	err := s.pool.QueryRow(ctx, s.sql.customerUser, customerID).Scan(&user)
	return user, err
}

// Conversions implements Store.
func (s *Store) Conversions(ctx context.Context, from, to time.Time) ([]freemium.Conversion, error) {
	rows, _ := s.pool.Query(ctx, s.sql.conversions, from, to)
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (freemium.Conversion, error) {
		var c freemium.Conversion
		err := row.Scan(&c.UserID, &c.Plan, &c.At)
		c.At = c.At.UTC()
		return c, err
	})
}

// Enqueue implements Store.
func (s *Store) Enqueue(ctx context.Context, n freemium.Notification, windowStart time.Time, deliver bool, now time.Time) (bool, error) {
	usage, err := json.Marshal(n.Usage)
	if err != nil {
		return false, err
	}
	state := freemium.DeliveryNone
	if deliver {
		state = freemium.DeliveryPending
	}
	var b pgx.Batch
	b.Queue(s.sql.reserveCreate, n.UserID)
	b.Queue(s.sql.lockAccount, n.UserID)
	b.Queue(s.sql.enqueue, n.ID, n.UserID, string(n.Kind), int16(freemium.NotifiedKinds(0).With(n.Kind)), windowStart,
		usage, n.UpgradeURL, n.CreatedAt, string(state), now)
	var added bool
	err = s.batch(ctx, &b, -1, func(row pgx.Row) error { return row.Scan(&added) })
	return added, err
}

// ClaimNotifications implements Store.
func (s *Store) ClaimNotifications(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]freemium.Outbound, error) {
	rows, _ := s.pool.Query(ctx, s.sql.claim, now, limit, lease.Microseconds())
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (freemium.Outbound, error) {
		var o freemium.Outbound
		var usage []byte
		if err := row.Scan(&o.ID, &o.UserID, &o.Kind, &usage, &o.UpgradeURL, &o.CreatedAt, &o.Attempts, &o.ClaimedUntil); err != nil {
			return o, err
		}
		o.CreatedAt, o.ClaimedUntil = o.CreatedAt.UTC(), o.ClaimedUntil.UTC()
		return o, json.Unmarshal(usage, &o.Usage)
	})
	slices.SortFunc(out, func(a, b freemium.Outbound) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, err
}

// FinishNotification implements Store.
func (s *Store) FinishNotification(ctx context.Context, id string, o freemium.Outcome, now time.Time) error {
	_, err := s.pool.Exec(ctx, s.sql.finish, id, string(o.State), o.MessageID, o.Retry, o.Error, now, o.Claim)
	return err
}

// Notifications implements Store.
func (s *Store) Notifications(ctx context.Context, from, to time.Time) ([]freemium.NotificationRecord, error) {
	rows, _ := s.pool.Query(ctx, s.sql.notifications, from, to)
	return pgx.CollectRows(rows, scanNotification)
}
