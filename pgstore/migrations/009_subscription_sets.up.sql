-- freemium schema, version 9: the subscription mirror keeps each of a
-- user's subscriptions (SubscriptionMirror), so that news of one never
-- undoes another: a second subscription (an add-on, a double checkout) no
-- longer hides or ends the one that places the user on a plan.
--   subs: a JSON array, one object per subscription, as PostgresStore
--     writes it: id, customer_id, price_ids (every item's price), status,
--     period_start, period_end, cancel_at_period_end, as_of, paid_plan.
--   pulled_as_of: the as-of of the last pull; zero: never pulled.
-- The single-subscription columns go, so an instance of version 8 fails
-- instead of writing a mirror this version would not read: stop them first.
-- Times in the JSON are RFC 3339 in UTC, as Go writes them, whatever the
-- session's time zone (which would shape a plain timestamptz's text).
ALTER TABLE subscriptions
    ADD COLUMN subs jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN pulled_as_of timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00';
UPDATE subscriptions SET subs = jsonb_build_array(jsonb_build_object(
        'id', sub_id, 'customer_id', sub_customer_id,
        'price_ids', CASE WHEN price_id = '' THEN '[]'::jsonb ELSE jsonb_build_array(price_id) END,
        'status', status,
        'period_start', to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'period_end', to_char(period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'cancel_at_period_end', cancel_at_period_end,
        'as_of', to_char(as_of AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'paid_plan', paid_plan))
WHERE sub_id <> '';
UPDATE subscriptions SET pulled_as_of = as_of WHERE pulled;
ALTER TABLE subscriptions
    DROP COLUMN sub_id,
    DROP COLUMN sub_customer_id,
    DROP COLUMN price_id,
    DROP COLUMN status,
    DROP COLUMN period_start,
    DROP COLUMN period_end,
    DROP COLUMN cancel_at_period_end,
    DROP COLUMN paid_plan,
    DROP COLUMN status_rank,
    DROP COLUMN as_of,
    DROP COLUMN pulled,
    DROP COLUMN converted;
