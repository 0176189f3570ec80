-- freemium schema, version 3: the notification outbox.

-- usage_periods.notified: the notification kinds enqueued for the user in
-- the window, as bits (NotifiedKinds), so that a check reads them with the
-- usage, and a repeated block writes nothing.
ALTER TABLE usage_periods ADD COLUMN notified smallint NOT NULL DEFAULT 0;

-- notifications: the outbox. One row per user, kind and window (the
-- marks above decide which Enqueue adds it). Dispatchers claim pending rows
-- due by next_attempt_at with FOR UPDATE SKIP LOCKED. Rows stay as the
-- history the funnel reads.
CREATE TABLE notifications (
    id              text        PRIMARY KEY,
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
