package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/freemiumkit/freemium"
)

// Credits: grants, their spending, revocations, adjustments and the
// ledger. The account row keeps the sum of the user's live grants
// (credits) and the earliest expiry among them (credits_until), so that a
// check and a reserve still read that row alone; every statement that
// writes a grant counts them again from the grants rows ({count_credits}),
// under the account row's lock.

// creditsSQL counts the user's live grants, for Load when the account's
// credits may count an expired one: $1 user, $2 now.
const creditsSQL = `
SELECT least(coalesce(sum(remaining), 0), {max})::bigint, min(expires_at) FROM {s}.grants
WHERE user_id = $1 AND remaining > 0 AND (expires_at IS NULL OR expires_at > $2::timestamptz)`

// recountCreditsSQL counts a locked account's credits again when they may
// count an expired grant, in Reserve's slow path: $1 user, $2 now.
const recountCreditsSQL = `
WITH credit_rows AS (
	SELECT remaining, expires_at FROM {s}.grants WHERE user_id = $1::text
)
UPDATE {s}.accounts a SET {count_credits}
WHERE a.user_id = $1 AND NOT {credits_exact}`

// spendSQL takes the account's to_spend, which the write of usage before
// it in the transaction left, from the user's live grants: earliest expiry
// first, no expiry last, then oldest first; as far as they go. Each grant
// spent from gets a ledger entry. $1 user, $2 now, $3 the entries' reason.
const spendSQL = `
WITH owed AS (
	SELECT to_spend FROM {s}.accounts WHERE user_id = $1::text AND to_spend > 0
), live AS (
	SELECT g.key, g.seq, g.remaining, g.expires_at,
	       sum(g.remaining) OVER (ORDER BY g.expires_at NULLS LAST, g.seq) - g.remaining AS before
	FROM {s}.grants g
	WHERE g.user_id = $1 AND g.remaining > 0 AND (g.expires_at IS NULL OR g.expires_at > $2::timestamptz)
	  AND EXISTS (SELECT 1 FROM owed)
), take AS (
	SELECT l.key, least(l.remaining, o.to_spend - l.before)::bigint AS n, l.expires_at, l.seq
	FROM live l, owed o WHERE l.before < o.to_spend
), spent AS (
	UPDATE {s}.grants g SET remaining = g.remaining - t.n FROM take t WHERE g.user_id = $1 AND g.key = t.key
), entries AS (
	INSERT INTO {s}.ledger (user_id, at, kind, tokens, key, reason)
	SELECT $1, $2, 'spend', -t.n, t.key, $3 FROM take t ORDER BY t.expires_at NULLS LAST, t.seq
), credit_rows AS (
	SELECT l.remaining - coalesce(t.n, 0) AS remaining, l.expires_at FROM live l LEFT JOIN take t ON t.key = l.key
)
UPDATE {s}.accounts a SET to_spend = 0, {count_credits}
WHERE a.user_id = $1 AND a.to_spend > 0`

// grantSQL adds a grant and its ledger entry (none for 0 tokens: a
// grant that only takes the key), unless the user has one with the key, under the account row's lock (the batch before it adds the row
// and locks it): $1 user, $2 key, $3 tokens, $4 expires (NULL: never), $5
// reason, $6 now, $7 the top-up's price (NULL: not one). It answers whether
// it added.
const grantSQL = `
WITH g AS (
	INSERT INTO {s}.grants (user_id, key, tokens, remaining, expires_at, reason, granted_at, top_up)
	VALUES ($1, $2, $3, $3, $4, $5, $6, $7)
	ON CONFLICT (user_id, key) DO NOTHING
	RETURNING remaining, expires_at
), entry AS (
	INSERT INTO {s}.ledger (user_id, at, kind, tokens, key, reason, expires_at)
	SELECT $1, $6, 'grant', $3, $2, $5, $4 FROM g WHERE $3::bigint > 0
), credit_rows AS (
	SELECT remaining, expires_at FROM {s}.grants WHERE user_id = $1
	UNION ALL SELECT remaining, expires_at FROM g
), acct AS (
	UPDATE {s}.accounts a SET {count_credits} WHERE a.user_id = $1 AND EXISTS (SELECT 1 FROM g)
)
SELECT EXISTS (SELECT 1 FROM g)`

// revokeSQL takes what is left of a live grant back, with a ledger entry,
// under the account row's lock: $1 user, $2 key, $3 reason, $4 now. It
// answers whether the user has the grant, and the tokens revoked.
const revokeSQL = `
WITH g AS (
	SELECT remaining, remaining > 0 AND (expires_at IS NULL OR expires_at > $4::timestamptz) AS live
	FROM {s}.grants WHERE user_id = $1::text AND key = $2::text
), r AS (
	UPDATE {s}.grants t SET remaining = 0 FROM g WHERE t.user_id = $1 AND t.key = $2 AND g.live
	RETURNING g.remaining AS n
), entry AS (
	INSERT INTO {s}.ledger (user_id, at, kind, tokens, key, reason) SELECT $1, $4, 'revoke', -n, $2, $3 FROM r
), credit_rows AS (
	SELECT CASE WHEN key = $2 THEN 0 ELSE remaining END AS remaining, expires_at FROM {s}.grants WHERE user_id = $1
), acct AS (
	UPDATE {s}.accounts a SET {count_credits} WHERE a.user_id = $1 AND EXISTS (SELECT 1 FROM r)
)
SELECT EXISTS (SELECT 1 FROM g), coalesce((SELECT n FROM r), 0)`

// adjustSQL adds tokens (negative: takes them off, down to zero) to a
// window's usage, once per user and key, with a ledger entry of the change
// made, under the account row's lock (the batch before it anchors the user
// and locks the row): $1 user, $2 start, $3 every (µs), $4 tokens, $5 key,
// $6 now, $7 reason. It answers whether it adjusted. A racing Adjust with
// the key waits for the lock, and then sees this one's entry.
const adjustSQL = `
WITH src AS (
	SELECT a.user_id, {window_start} AS ws, $4::bigint AS tokens, 0::smallint AS bits
	FROM {s}.accounts a WHERE a.user_id = $1::text
	  AND NOT EXISTS (SELECT 1 FROM {s}.ledger l WHERE l.user_id = $1 AND l.kind = 'adjust' AND l.key = $5::text)
), {write_usage}, acct AS (
	UPDATE {s}.accounts a SET {write_latest} FROM cur WHERE a.user_id = cur.user_id
), entry AS (
	INSERT INTO {s}.ledger (user_id, at, kind, tokens, key, reason)
	SELECT user_id, $6, 'adjust', after - before, $5, $7 FROM cur
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM entry)`

// ledgerSQL reads a user's ledger in [from, to): the entries written, and
// for each grant expired by now with tokens left, an expiry entry at its
// expiry; oldest first. $1 user, $2 from, $3 to, $4 now, $5 the expiry
// entries' reason.
const ledgerSQL = `
SELECT at, kind, tokens, key, reason, expires_at FROM (
	SELECT at, seq, kind, tokens, key, reason, expires_at FROM {s}.ledger
	WHERE user_id = $1 AND at >= $2 AND at < $3
	UNION ALL
	SELECT expires_at, NULL, 'expire', -remaining, key, $5, NULL FROM {s}.grants
	WHERE user_id = $1 AND remaining > 0 AND expires_at <= $4 AND expires_at >= $2 AND expires_at < $3
) e
ORDER BY at, seq NULLS LAST, key`

// Grant implements freemium.Store.
func (s *Store) Grant(ctx context.Context, c freemium.Credit, now time.Time) (bool, error) {
	var b pgx.Batch
	b.Queue(s.sql.reserveCreate, c.UserID)
	b.Queue(s.sql.lockAccount, c.UserID)
	b.Queue(s.sql.grant, c.UserID, c.Key, c.Tokens, nullTime(c.ExpiresAt), c.Reason, now, nullText(c.TopUp))
	var added bool
	err := s.batch(ctx, &b, -1, func(row pgx.Row) error { return row.Scan(&added) })
	return added, err
}

// Revoke implements freemium.Store.
func (s *Store) Revoke(ctx context.Context, userID, key, reason string, now time.Time) (int64, error) {
	var b pgx.Batch
	b.Queue(s.sql.lockAccount, userID)
	b.Queue(s.sql.revoke, userID, key, reason, now)
	var (
		found bool
		n     int64
	)
	if err := s.batch(ctx, &b, -1, func(row pgx.Row) error { return row.Scan(&found, &n) }); err != nil {
		return 0, err
	}
	if !found {
		return 0, freemium.ErrGrantNotFound
	}
	return n, nil
}

// Adjust implements freemium.Store.
func (s *Store) Adjust(ctx context.Context, userID string, w freemium.Window, tokens int64, key, reason string, now time.Time) (bool, error) {
	var b pgx.Batch
	b.Queue(s.sql.createAccount, userID, now)
	b.Queue(s.sql.lockAccount, userID)
	b.Queue(s.sql.adjust, userID, w.Start, w.Every.Microseconds(), tokens, key, now, reason)
	var done bool
	err := s.batch(ctx, &b, -1, func(row pgx.Row) error { return row.Scan(&done) })
	return done, err
}

// Ledger implements freemium.Store.
func (s *Store) Ledger(ctx context.Context, userID string, from, to, now time.Time) ([]freemium.LedgerEntry, error) {
	rows, _ := s.pool.Query(ctx, s.sql.ledger, userID, from, to, now, freemium.ExpireReason)
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (freemium.LedgerEntry, error) {
		var (
			e       freemium.LedgerEntry
			kind    string
			expires pgtype.Timestamptz
		)
		err := row.Scan(&e.At, &kind, &e.Tokens, &e.Key, &e.Reason, &expires)
		e.At, e.Kind, e.ExpiresAt = e.At.UTC(), freemium.LedgerKind(kind), pgTime(expires)
		return e, err
	})
}

// credits counts the user's live grants at now, for a Load whose account
// row may count an expired one.
func (s *Store) credits(ctx context.Context, userID string, now time.Time) (int64, time.Time, error) {
	var (
		n     int64
		until pgtype.Timestamptz
	)
	err := s.pool.QueryRow(ctx, s.sql.credits, userID, now).Scan(&n, &until)
	return n, pgTime(until), err
}

// topUpsSQL: $1 from, $2 to.
const topUpsSQL = `
SELECT user_id, top_up, tokens, granted_at FROM {s}.grants
WHERE top_up IS NOT NULL AND granted_at >= $1 AND granted_at < $2 ORDER BY granted_at`

// TopUps implements freemium.Store.
func (s *Store) TopUps(ctx context.Context, from, to time.Time) ([]freemium.TopUpRecord, error) {
	rows, _ := s.pool.Query(ctx, s.sql.topUps, from, to)
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (freemium.TopUpRecord, error) {
		var t freemium.TopUpRecord
		err := row.Scan(&t.UserID, &t.PriceID, &t.Tokens, &t.At)
		t.At = t.At.UTC()
		return t, err
	})
}

// nullText is s for a nullable column: NULL for "".
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullTime is t for a nullable column: NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}
