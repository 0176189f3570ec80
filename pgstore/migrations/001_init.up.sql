-- freemium schema, version 1: tables only; the statements live in Go
-- (postgres.go). Objects are unqualified: run this with search_path set to
-- the target schema (PostgresStore.Migrate does).

-- hold: a live reservation, as kept on its user's account row.
CREATE TYPE hold AS (id text, tokens bigint, expires_at timestamptz, first_report boolean);

-- accounts: one row per user seen.
--   anchor fixes Every(d) windows: the user's first activity.
--   holds are the live holds (and expired ones until the next Reserve).
CREATE TABLE accounts (
    user_id           text        PRIMARY KEY,
    anchor            timestamptz NOT NULL,
    first_report_used boolean     NOT NULL DEFAULT false,
    holds             hold[]      NOT NULL DEFAULT '{}'
);

-- usage_periods: tokens used per user per window, keyed by window start
-- (the Gate knows each window's end from the plan).
CREATE TABLE usage_periods (
    user_id      text        NOT NULL,
    period_start timestamptz NOT NULL,
    used         bigint      NOT NULL CHECK (used >= 0),
    PRIMARY KEY (user_id, period_start)
);

-- usage_keys: idempotency keys of Record, once per user (tokens and time
-- kept for audit).
CREATE TABLE usage_keys (
    user_id     text        NOT NULL,
    key         text        NOT NULL,
    tokens      bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- reservations: every reservation by ID, for Commit and Cancel, until a day
-- after it expires.
CREATE TABLE reservations (
    id           text        PRIMARY KEY,
    user_id      text        NOT NULL,
    period_start timestamptz NOT NULL,
    first_report boolean     NOT NULL,
    state        text        NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'committed', 'canceled')),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX reservations_expires ON reservations (expires_at);
