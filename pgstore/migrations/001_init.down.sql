-- Drops everything 001_init.up.sql created. Run with search_path set to the
-- store's schema; the schema itself, and the tracking table of the tool
-- that ran the migration, stay.
DROP TABLE notifications;
DROP TABLE conversions;
DROP TABLE customers;
DROP TABLE subscriptions;
DROP TABLE reservations;
DROP TABLE usage_keys;
DROP TABLE usage_windows;
DROP TABLE accounts;
DROP FUNCTION raise_retry(text);
