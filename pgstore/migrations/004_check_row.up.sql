-- freemium schema, version 4: what a check needs, on the account row, so
-- that Check reads two rows by primary key and Reserve decides on one.
--
-- Every statement that writes usage also writes these columns in the same
-- transaction; instances of an older version do not. Stop them before
-- applying this migration. usage_periods becomes usage_windows, so that an
-- older instance still running fails on the old name instead of writing
-- usage the account rows do not see.
ALTER TABLE usage_periods RENAME TO usage_windows;

-- An account row may now be unanchored: a user with a notification mark
-- but no activity yet. The first activity anchors it.
ALTER TABLE accounts ALTER COLUMN anchor DROP NOT NULL;

-- held: the tokens of the holds in holds (saturating at the bigint
-- maximum); held_until: their earliest expiry, NULL for none (a check
-- after it sums the live holds itself); first_held_until: the expiry of
-- the first-report hold among them, NULL for none (there is at most one).
-- win_start, win_used, win_notified: a copy of the user's latest
-- usage_windows row (by period_start), NULL start for none.
ALTER TABLE accounts
    ADD COLUMN held             bigint      NOT NULL DEFAULT 0,
    ADD COLUMN held_until       timestamptz,
    ADD COLUMN first_held_until timestamptz,
    ADD COLUMN win_start        timestamptz,
    ADD COLUMN win_used         bigint      NOT NULL DEFAULT 0,
    ADD COLUMN win_notified     smallint    NOT NULL DEFAULT 0;

UPDATE accounts a SET (held, held_until, first_held_until) = (
    SELECT least(coalesce(sum(x.tokens), 0), 9223372036854775807), min(x.expires_at),
           max(x.expires_at) FILTER (WHERE x.first_report)
    FROM unnest(a.holds) x)
WHERE cardinality(a.holds) > 0;

-- Users with only notification marks had no account row.
INSERT INTO accounts (user_id, anchor)
SELECT DISTINCT user_id, NULL::timestamptz FROM usage_windows
ON CONFLICT (user_id) DO NOTHING;

UPDATE accounts a SET (win_start, win_used, win_notified) = (
    SELECT u.period_start, u.used, u.notified FROM usage_windows u
    WHERE u.user_id = a.user_id ORDER BY u.period_start DESC LIMIT 1)
WHERE EXISTS (SELECT 1 FROM usage_windows u WHERE u.user_id = a.user_id);
