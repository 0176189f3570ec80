-- freemium schema, version 6: the account row becomes the record of the
-- user's latest window, so that Commit and Record write one row besides the
-- reservation or key, not two.
--
-- latest_start, latest_used, latest_notified: the user's latest window (by
-- start) and its usage and notification marks. Writes to that window go to
-- these columns only; its usage_windows row, if any, is stale until a write
-- to a newer window moves these values there. Older windows live in
-- usage_windows, written only under the account row's lock.
--
-- Statements of version 5 kept win_* as a copy of the usage row and would
-- overwrite the record with a stale row: renaming the columns makes
-- instances of that version fail instead. Stop them before applying this
-- migration. At version 5 the copy equals the row, so no data moves.
ALTER TABLE accounts RENAME COLUMN win_start TO latest_start;
ALTER TABLE accounts RENAME COLUMN win_used TO latest_used;
ALTER TABLE accounts RENAME COLUMN win_notified TO latest_notified;

-- raise_retry fails the statement with serialization_failure (SQLSTATE
-- 40001): for a statement that finds, after taking its first lock, that a
-- racing write took the path it chose; the caller retries on a slower one.
CREATE FUNCTION raise_retry(message text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = message;
END
$$;
