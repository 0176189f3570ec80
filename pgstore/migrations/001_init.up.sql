-- The freemium schema. Objects are unqualified: run this with search_path
-- set to the store's schema, which must exist (Store.Migrate does both).
-- How the statements use these tables: docs/postgres.md.
--
-- Text keys (user IDs, reservation IDs, idempotency keys, customer IDs)
-- compare as bytes (COLLATE "C"): equality is the same as in any
-- deterministic collation, and byte comparison spares strcoll on every
-- index lookup.

-- raise_retry fails the statement with serialization_failure (SQLSTATE
-- 40001): for a statement that finds, after taking its first lock, that a
-- racing write took the path it chose; the caller retries on a slower one.
CREATE FUNCTION raise_retry(message text) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = message;
END
$$;

-- accounts: one row per user seen. Everything a check needs is here, so
-- that Check reads two rows by primary key (this and subscriptions) and
-- Reserve decides on this row alone.
--   anchor: the user's first activity (Reserve, Record, MarkFirstReportUsed),
--     which fixes Every(d) windows; NULL for a user with only a
--     notification mark.
--   held: the tokens of the user's holds that count (numeric: a sum of
--     holds must not overflow). Exact while held = 0 or held_until > now;
--     otherwise a Reserve recounts the live holds from reservations.
--   held_until: a lower bound of the counted holds' expiries.
--   first_hold, first_held_until: the live first-report hold and its
--     expiry, NULL for none (there is at most one).
--   latest_start, latest_used, latest_notified: the user's latest window
--     (by start), its usage and its notification marks (NotifiedKinds
--     bits). Writes to that window go here only; older windows live in
--     usage_windows, written only under this row's lock.
--   last_hold, last_tokens, last_expires, last_start, last_first: the
--     user's latest admitted hold, as its reservation row has it, so that
--     its Commit writes this row alone. last_committed: Commit recorded that
--     hold here, and its reservation row still says held. The next
--     admitted hold carries the fact on in committed_prev (here and in its
--     reservation row). So a reservation is committed when its row_state
--     says so, or when it is its account's last_hold with last_committed,
--     or when a later reservation of its user names it in committed_prev.
CREATE TABLE accounts (
    user_id           text        PRIMARY KEY COLLATE "C",
    anchor            timestamptz,
    first_report_used boolean     NOT NULL DEFAULT false,
    held              numeric     NOT NULL DEFAULT 0,
    held_until        timestamptz,
    first_hold        text,
    first_held_until  timestamptz,
    latest_start      timestamptz,
    latest_used       bigint      NOT NULL DEFAULT 0,
    latest_notified   smallint    NOT NULL DEFAULT 0,
    last_hold         text,
    last_tokens       bigint,
    last_expires      timestamptz,
    last_start        timestamptz,
    last_first        boolean     NOT NULL DEFAULT false,
    last_committed    boolean     NOT NULL DEFAULT false,
    committed_prev    text        COLLATE "C"
);

-- usage_windows: tokens used and notification marks per user per window
-- older than the user's latest (see accounts), keyed by the window's start
-- (the Gate knows each window's end from the plan).
CREATE TABLE usage_windows (
    user_id      text        NOT NULL COLLATE "C",
    period_start timestamptz NOT NULL,
    used         bigint      NOT NULL CHECK (used >= 0),
    notified     smallint    NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, period_start)
);

-- usage_keys: the idempotency keys of Record, once per user (tokens and
-- time kept for audit).
CREATE TABLE usage_keys (
    user_id     text        NOT NULL COLLATE "C",
    key         text        NOT NULL COLLATE "C",
    tokens      bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- reservations: every hold by ID, for Commit and Cancel, until
-- HoldRetention after it expires.
--   row_state: held, committed or canceled; a held row may be committed all
--     the same (see accounts.last_committed).
--   tokens: the hold's tokens while they count towards its account's held;
--     Cancel and a recount that drops the hold set them to 0, so that a
--     hold gives back exactly what it added.
--   committed_prev: the user's previous hold, when Commit recorded it on
--     the account row alone.
--   placed_by: the instance (Store) that placed the hold; it judges the
--     hold's expiry by its own clock (expires_at), other instances by the
--     database's (db_expires: the TTL after the Reserve's statement began).
--     NULL: judged by expires_at.
CREATE TABLE reservations (
    id             text        PRIMARY KEY COLLATE "C",
    user_id        text        NOT NULL COLLATE "C",
    period_start   timestamptz NOT NULL,
    first_report   boolean     NOT NULL,
    row_state      text        NOT NULL DEFAULT 'held' CHECK (row_state IN ('held', 'committed', 'canceled')),
    expires_at     timestamptz NOT NULL,
    tokens         bigint      NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    committed_prev text        COLLATE "C",
    placed_by      bigint,
    db_expires     timestamptz
);
CREATE INDEX reservations_expires ON reservations (expires_at);
-- The recount of a user's live holds asks, of each, whether a later one
-- names it: one index answers both.
CREATE INDEX reservations_user ON reservations (user_id, committed_prev);

-- subscriptions: each user's subscription mirror (one row per user that
-- has been mirrored or linked), read by Check together with the account.
--   customer_id: the customer last linked to the user (LinkCustomer).
--   subs: a JSON array, one object per subscription: id, customer_id,
--     price_ids (every item's price), status, period_start, period_end,
--     cancel_at_period_end, as_of, paid_plan, was_paid. Times are RFC 3339
--     in UTC, whatever the session's time zone.
--   pulled_as_of: the as-of of the last pull; zero: never pulled.
--   synced_at: when the mirror was last confirmed; zero: refresh it.
--   version: counts the writes of the mirror (SubscriptionMirror.Version):
--     a Reserve decided on a mirror places its hold only while the mirror
--     still has that version.
-- Unset times are '0001-01-01 00:00:00+00', Go's zero time.
CREATE TABLE subscriptions (
    user_id      text        PRIMARY KEY COLLATE "C",
    customer_id  text        NOT NULL DEFAULT '',
    synced_at    timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    subs         jsonb       NOT NULL DEFAULT '[]',
    pulled_as_of timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    version      bigint      NOT NULL DEFAULT 0
);

-- customers: which user a billing provider's customer belongs to, for
-- webhooks, which name customers. A customer belongs to one user.
CREATE TABLE customers (
    customer_id text        PRIMARY KEY COLLATE "C",
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

-- notifications: the outbox. One row per user, kind and window (the marks
-- in accounts.latest_notified and usage_windows.notified decide which
-- Enqueue adds it). Dispatchers claim pending rows due by next_attempt_at
-- with FOR UPDATE SKIP LOCKED. Rows stay as the history the funnel reads.
CREATE TABLE notifications (
    id              text        PRIMARY KEY COLLATE "C",
    user_id         text        NOT NULL,
    kind            text        NOT NULL,
    period_start    timestamptz NOT NULL,
    usage           jsonb       NOT NULL,
    upgrade_url     text        NOT NULL,
    created_at      timestamptz NOT NULL,
    state           text        NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'recorded')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    message_id      text        NOT NULL DEFAULT '',
    sent_at         timestamptz,
    last_error      text        NOT NULL DEFAULT ''
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_created ON notifications (created_at);
