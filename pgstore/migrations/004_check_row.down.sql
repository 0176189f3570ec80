DELETE FROM accounts WHERE anchor IS NULL;
ALTER TABLE accounts
    DROP COLUMN IF EXISTS held,
    DROP COLUMN IF EXISTS held_until,
    DROP COLUMN IF EXISTS first_held_until,
    DROP COLUMN IF EXISTS win_start,
    DROP COLUMN IF EXISTS win_used,
    DROP COLUMN IF EXISTS win_notified;
ALTER TABLE accounts ALTER COLUMN anchor SET NOT NULL;
ALTER TABLE usage_windows RENAME TO usage_periods;
