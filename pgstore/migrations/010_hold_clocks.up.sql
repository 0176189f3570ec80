-- freemium schema, version 10: a hold's expiry no longer depends on which
-- instance's clock is ahead.
--
-- placed_by: the instance (PostgresStore) that placed the hold; NULL for a
-- hold placed before this version. db_expires: its expiry by the
-- database's clock, its TTL after the Reserve's statement began. An
-- instance judges its own holds (and those of before this version) by its
-- clock, and other instances' holds by the database's.
ALTER TABLE reservations
    ADD COLUMN placed_by  bigint,
    ADD COLUMN db_expires timestamptz;

-- A recount used to stamp the recounting instance's time in pruned_at, and
-- a Commit or Cancel gave a hold's tokens back only when the hold expired
-- after it: a hold placed later by an instance whose clock is behind was
-- counted and never given back. Now a recount takes the tokens of each hold
-- it drops to 0 (as Cancel does), so that a hold gives back exactly what
-- it added, whatever the clocks. held becomes the sum of the tokens of the
-- holds still held: the ones a recount dropped get 0 first. A sum that
-- counts an expired hold has held_until in the past, so the next Reserve
-- recounts it.
UPDATE reservations r SET tokens = 0
FROM accounts a
WHERE a.user_id = r.user_id AND r.row_state = 'held' AND r.tokens > 0 AND r.expires_at <= a.pruned_at;
UPDATE accounts a SET last_tokens = 0
WHERE a.last_tokens > 0 AND a.last_expires <= a.pruned_at;
UPDATE accounts a SET (held, held_until) = (
    SELECT coalesce(sum(r.tokens::numeric), 0), min(r.expires_at) FROM reservations r
    WHERE r.user_id = a.user_id AND r.row_state = 'held'
      AND NOT coalesce(a.last_committed AND a.last_hold = r.id, false)
      AND NOT EXISTS (SELECT 1 FROM reservations n WHERE n.user_id = r.user_id AND n.committed_prev = r.id))
WHERE a.held <> 0 OR a.pruned_at IS NOT NULL;
ALTER TABLE accounts DROP COLUMN pruned_at;
