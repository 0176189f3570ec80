-- Drops what 002_credits.up.sql added. Run with search_path set to the
-- store's schema.
DROP TABLE ledger;
DROP TABLE grants;
ALTER TABLE reservations DROP COLUMN lim;
ALTER TABLE accounts DROP COLUMN credits, DROP COLUMN credits_until, DROP COLUMN to_spend;
