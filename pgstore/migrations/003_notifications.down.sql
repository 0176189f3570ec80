DROP TABLE IF EXISTS notifications;
ALTER TABLE usage_periods DROP COLUMN IF EXISTS notified;
