-- freemium schema, version 2: the subscription mirror, customer links and
-- conversions. Unset times are '0001-01-01 00:00:00+00', Go's zero time.

-- subscriptions: each user's mirrored subscription (one row per user that
-- has been mirrored or linked), read by Check together with usage.
--   customer_id is the customer last linked to the user (LinkCustomer).
--   as_of, pulled and status_rank order snapshots (SubscriptionSnapshot.Supersedes).
--   synced_at is when the snapshot was last confirmed; zero: refresh it.
--   converted: the last write took the user from Free to a paid plan.
CREATE TABLE subscriptions (
    user_id              text        PRIMARY KEY,
    customer_id          text        NOT NULL DEFAULT '',
    sub_id               text        NOT NULL DEFAULT '',
    sub_customer_id      text        NOT NULL DEFAULT '',
    price_id             text        NOT NULL DEFAULT '',
    status               text        NOT NULL DEFAULT '',
    period_start         timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    period_end           timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    cancel_at_period_end boolean     NOT NULL DEFAULT false,
    paid_plan            text        NOT NULL DEFAULT '',
    status_rank          smallint    NOT NULL DEFAULT 0,
    as_of                timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    synced_at            timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    pulled               boolean     NOT NULL DEFAULT false,
    converted            boolean     NOT NULL DEFAULT false
);

-- customers: which user a billing provider's customer belongs to, for
-- webhooks, which name customers. A customer belongs to one user.
CREATE TABLE customers (
    customer_id text        PRIMARY KEY,
    user_id     text        NOT NULL,
    linked_at   timestamptz NOT NULL
);

-- conversions: each change of a user from Free to a paid plan.
CREATE TABLE conversions (
    user_id      text        NOT NULL,
    plan         text        NOT NULL,
    converted_at timestamptz NOT NULL
);
CREATE INDEX conversions_at ON conversions (converted_at);
