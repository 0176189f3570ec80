-- freemium schema, version 5: the live holds leave the account row, which
-- keeps only their sum, so that Reserve and Commit do arithmetic on one row
-- instead of rebuilding an array.
--
-- Statements of version 4 read and write accounts.holds, which this drops:
-- instances of that version fail instead of writing holds this version does
-- not count. Stop them before applying this migration.

-- tokens: a hold's tokens while they count towards its account's held;
-- Cancel sets them to 0 (a later Commit then gives nothing back).
ALTER TABLE reservations ADD COLUMN tokens bigint NOT NULL DEFAULT 0 CHECK (tokens >= 0);
UPDATE reservations r SET tokens = x.tokens
FROM accounts a, unnest(a.holds) x
WHERE a.user_id = r.user_id AND x.id = r.id AND r.state = 'held';
-- For the rare recount of a user's live holds (see pruned_at).
CREATE INDEX reservations_user ON reservations (user_id);

-- held: the tokens of the user's holds that count: every hold Reserve
-- placed since pruned_at, and the ones still held that expire after it,
-- less what Commit and Cancel gave back. Exact (numeric: a sum of holds
-- must not overflow) while held = 0 or held_until > now; otherwise a
-- Reserve recounts the live holds from reservations and sets pruned_at.
-- held_until: a lower bound of the counted holds' expiries.
-- first_hold: the ID of the live first-report hold (with first_held_until),
-- NULL for none. last_hold: the ID of the last hold Reserve placed, so that
-- it knows whether it placed one.
ALTER TABLE accounts
    ALTER COLUMN held TYPE numeric,
    ADD COLUMN first_hold text,
    ADD COLUMN last_hold  text,
    ADD COLUMN pruned_at  timestamptz;

UPDATE accounts a SET (held, held_until, first_hold) = (
    SELECT coalesce(sum(x.tokens::numeric), 0), min(x.expires_at),
           (array_agg(x.id ORDER BY x.expires_at DESC) FILTER (WHERE x.first_report))[1]
    FROM unnest(a.holds) x)
WHERE cardinality(a.holds) > 0;

ALTER TABLE accounts DROP COLUMN holds;
DROP TYPE hold;
