-- Back to version 5: each account's latest window goes to its usage row,
-- which the columns are a copy of again.
INSERT INTO usage_windows AS u (user_id, period_start, used, notified)
SELECT user_id, latest_start, latest_used, latest_notified FROM accounts WHERE latest_start IS NOT NULL
ON CONFLICT (user_id, period_start) DO UPDATE SET used = excluded.used, notified = excluded.notified;
DROP FUNCTION raise_retry(text);
ALTER TABLE accounts RENAME COLUMN latest_start TO win_start;
ALTER TABLE accounts RENAME COLUMN latest_used TO win_used;
ALTER TABLE accounts RENAME COLUMN latest_notified TO win_notified;
