-- Back to version 8: the mirror keeps one subscription, the one that gives
-- the most access (then the one whose period ends last), with its first
-- price.
ALTER TABLE subscriptions
    ADD COLUMN sub_id               text        NOT NULL DEFAULT '',
    ADD COLUMN sub_customer_id      text        NOT NULL DEFAULT '',
    ADD COLUMN price_id             text        NOT NULL DEFAULT '',
    ADD COLUMN status               text        NOT NULL DEFAULT '',
    ADD COLUMN period_start         timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    ADD COLUMN period_end           timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    ADD COLUMN cancel_at_period_end boolean     NOT NULL DEFAULT false,
    ADD COLUMN paid_plan            text        NOT NULL DEFAULT '',
    ADD COLUMN status_rank          smallint    NOT NULL DEFAULT 0,
    ADD COLUMN as_of                timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    ADD COLUMN pulled               boolean     NOT NULL DEFAULT false,
    ADD COLUMN converted            boolean     NOT NULL DEFAULT false;
UPDATE subscriptions t SET sub_id = e->>'id', sub_customer_id = e->>'customer_id',
    price_id = coalesce(e->'price_ids'->>0, ''), status = e->>'status',
    period_start = (e->>'period_start')::timestamptz, period_end = (e->>'period_end')::timestamptz,
    cancel_at_period_end = (e->>'cancel_at_period_end')::boolean, paid_plan = e->>'paid_plan',
    status_rank = rank, as_of = (e->>'as_of')::timestamptz
FROM (
    SELECT DISTINCT ON (s.user_id) s.user_id, e,
           CASE WHEN e->>'status' IN ('active', 'trialing') THEN 3 WHEN e->>'status' = 'past_due' THEN 2
                WHEN e->>'status' IN ('unpaid', 'paused', 'incomplete') THEN 1 ELSE 0 END AS rank
    FROM subscriptions s, jsonb_array_elements(s.subs) e
    ORDER BY s.user_id, rank DESC, (e->>'period_end')::timestamptz DESC
) best
WHERE t.user_id = best.user_id;
UPDATE subscriptions SET pulled = true, as_of = pulled_as_of
WHERE pulled_as_of >= as_of AND pulled_as_of > '0001-01-01 00:00:00+00';
ALTER TABLE subscriptions DROP COLUMN subs, DROP COLUMN pulled_as_of;
