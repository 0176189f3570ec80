CREATE TYPE hold AS (id text, tokens bigint, expires_at timestamptz, first_report boolean);
ALTER TABLE accounts ADD COLUMN holds hold[] NOT NULL DEFAULT '{}';
UPDATE accounts a SET holds = (
    SELECT coalesce(array_agg(ROW(r.id, r.tokens, r.expires_at, r.first_report)::hold), '{}')
    FROM reservations r WHERE r.user_id = a.user_id AND r.state = 'held');
UPDATE accounts SET held = least(held, 9223372036854775807);
ALTER TABLE accounts
    ALTER COLUMN held TYPE bigint,
    DROP COLUMN first_hold,
    DROP COLUMN last_hold,
    DROP COLUMN pruned_at;
DROP INDEX reservations_user;
ALTER TABLE reservations DROP COLUMN tokens;
