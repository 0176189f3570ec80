-- freemium schema, version 8: Commit of a user's latest hold writes the
-- account row alone, so that Reserve + Commit writes the reservation row
-- once (Reserve's insert), not twice.
--
-- last_hold, last_tokens, last_expires, last_start, last_first: the user's
-- latest admitted hold, as its reservation row has it (ID, tokens, expiry,
-- window, admitted as the first report). NULL tokens for a hold placed
-- before this version. last_committed: Commit recorded that hold on the
-- account row alone, and its reservation row still says held. The next
-- admitted hold carries the fact on: Reserve copies the ID into
-- committed_prev, on the account row and in the new hold's reservation
-- row. So a reservation is committed when its row_state says so, or when
-- it is its account's last_hold with last_committed, or when a later
-- reservation of its user names it in committed_prev.
--
-- reservations.state becomes row_state, since a held row may now be
-- committed: statements of version 7 read it as the truth, and would count
-- such a hold again, so they fail on the old name instead. Stop instances
-- of that version before applying this migration.
ALTER TABLE reservations RENAME COLUMN state TO row_state;
ALTER TABLE reservations ADD COLUMN committed_prev text COLLATE "C";
-- The recount of a user's live holds asks, of each, whether a later one
-- names it: one index answers both.
DROP INDEX reservations_user;
CREATE INDEX reservations_user ON reservations (user_id, committed_prev);

ALTER TABLE accounts
    ADD COLUMN last_tokens    bigint,
    ADD COLUMN last_expires   timestamptz,
    ADD COLUMN last_start     timestamptz,
    ADD COLUMN last_first     boolean     NOT NULL DEFAULT false,
    ADD COLUMN last_committed boolean     NOT NULL DEFAULT false,
    ADD COLUMN committed_prev text        COLLATE "C";
