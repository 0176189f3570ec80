-- Back to the version before 10: no recount stamp yet, so that a Commit or Cancel gives
-- back every hold's tokens, which are 0 for the holds a recount dropped.
ALTER TABLE accounts ADD COLUMN pruned_at timestamptz;
ALTER TABLE reservations
    DROP COLUMN placed_by,
    DROP COLUMN db_expires;
