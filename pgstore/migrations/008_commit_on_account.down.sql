-- Back to version 7: every reservation committed on its account row, or
-- named by a later one, says so in its own row again.
UPDATE reservations r SET row_state = 'committed'
WHERE r.row_state = 'held' AND (
    EXISTS (SELECT 1 FROM accounts a WHERE a.user_id = r.user_id AND a.last_hold = r.id AND a.last_committed)
    OR EXISTS (SELECT 1 FROM reservations n WHERE n.user_id = r.user_id AND n.committed_prev = r.id));
ALTER TABLE accounts
    DROP COLUMN last_tokens,
    DROP COLUMN last_expires,
    DROP COLUMN last_start,
    DROP COLUMN last_first,
    DROP COLUMN last_committed,
    DROP COLUMN committed_prev;
DROP INDEX reservations_user;
CREATE INDEX reservations_user ON reservations (user_id);
ALTER TABLE reservations DROP COLUMN committed_prev;
ALTER TABLE reservations RENAME COLUMN row_state TO state;
