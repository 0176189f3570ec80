DROP TABLE IF EXISTS conversions;
DROP TABLE IF EXISTS customers;
DROP TABLE IF EXISTS subscriptions;
