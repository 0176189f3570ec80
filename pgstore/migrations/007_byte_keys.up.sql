-- freemium schema, version 7: user IDs, reservation IDs, idempotency keys
-- and the other text keys compare as bytes (COLLATE "C").
--
-- Postgres compares text in the database's collation; under any locale
-- but C or POSIX that is the C library's strcoll, on every comparison of
-- every index lookup. Measured on a C.UTF-8 database, byte comparison took
-- Check from 1.51-1.59x a SELECT 1 to 1.45-1.52x, and Reserve + Commit
-- 0.02-0.03x closer to a durable INSERT. Equality is the same in both
-- (these collations are deterministic), so every answer is the same: only
-- an ORDER BY on these columns could tell, and none uses one but the
-- outbox's tie-break on notification IDs, which are ASCII hex.
--
-- A changed collation rebuilds the column's indexes under an exclusive
-- lock on the table: on a large store, plan for the pause.
ALTER TABLE accounts ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE reservations
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE usage_windows ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE usage_keys
    ALTER COLUMN user_id TYPE text COLLATE "C",
    ALTER COLUMN key TYPE text COLLATE "C";
ALTER TABLE subscriptions ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE customers ALTER COLUMN customer_id TYPE text COLLATE "C";
ALTER TABLE notifications ALTER COLUMN id TYPE text COLLATE "C";
