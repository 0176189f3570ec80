-- Back to version 6: the database collation for the text keys.
ALTER TABLE accounts ALTER COLUMN user_id TYPE text COLLATE "default";
ALTER TABLE reservations
    ALTER COLUMN id TYPE text COLLATE "default",
    ALTER COLUMN user_id TYPE text COLLATE "default";
ALTER TABLE usage_windows ALTER COLUMN user_id TYPE text COLLATE "default";
ALTER TABLE usage_keys
    ALTER COLUMN user_id TYPE text COLLATE "default",
    ALTER COLUMN key TYPE text COLLATE "default";
ALTER TABLE subscriptions ALTER COLUMN user_id TYPE text COLLATE "default";
ALTER TABLE customers ALTER COLUMN customer_id TYPE text COLLATE "default";
ALTER TABLE notifications ALTER COLUMN id TYPE text COLLATE "default";
