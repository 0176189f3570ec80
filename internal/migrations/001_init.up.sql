-- freemium schema, version 1.
--
-- Objects are unqualified: run this with search_path set to the target
-- schema (PostgresStore.Migrate does). Functions keep that search_path
-- (SET search_path FROM CURRENT), so they find their tables wherever the
-- schema is and whatever the caller's search_path.
--
-- Reserve and Record take a transaction-scoped advisory lock on the user
-- (class 1718775089, 'frm1'), so that the check and the write of Reserve,
-- and the anchor and key handling of Record, are atomic under READ COMMITTED
-- with any number of app instances. Reads take no lock; Commit and Cancel
-- need none (see commit_reservation).

-- accounts: one row per user seen. anchor fixes Every(d) windows.
CREATE TABLE accounts (
    user_id           text        PRIMARY KEY,
    anchor            timestamptz NOT NULL,
    first_report_used boolean     NOT NULL DEFAULT false
);

-- usage_periods: tokens used per user per window, keyed by window start.
CREATE TABLE usage_periods (
    user_id      text        NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    used         bigint      NOT NULL CHECK (used >= 0),
    PRIMARY KEY (user_id, period_start)
);

-- usage_keys: idempotency keys of Record, once per user.
CREATE TABLE usage_keys (
    user_id     text        NOT NULL,
    key         text        NOT NULL,
    tokens      bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- reservations: holds, kept for a day after they expire so that a late or
-- repeated Commit is recognized.
CREATE TABLE reservations (
    id           text        PRIMARY KEY,
    user_id      text        NOT NULL,
    tokens       bigint      NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    first_report boolean     NOT NULL,
    state        text        NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'committed', 'canceled')),
    expires_at   timestamptz NOT NULL
);
-- Live holds only, so a busy user's committed holds are not scanned by checks.
CREATE INDEX reservations_held ON reservations (user_id, expires_at) WHERE state = 'held';
-- For pruning holds past retention.
CREATE INDEX reservations_user_expires ON reservations (user_id, expires_at);

-- usage_window: the window a user anchored at p_anchor is in at p_now. With
-- p_every_us > 0, windows of that many microseconds from the anchor (p_now
-- for a user not seen yet); otherwise [p_start, p_end).
CREATE FUNCTION usage_window(p_start timestamptz, p_end timestamptz, p_every_us bigint,
                             p_anchor timestamptz, p_now timestamptz,
                             OUT period_start timestamptz, OUT period_end timestamptz)
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF p_every_us > 0 THEN
        period_start := date_bin(p_every_us * interval '1 microsecond', p_now, coalesce(p_anchor, p_now));
        period_end := period_start + p_every_us * interval '1 microsecond';
    ELSE
        period_start := p_start;
        period_end := p_end;
    END IF;
END
$$;

-- add_usage adds tokens to a window, saturating at the bigint maximum.
CREATE FUNCTION add_usage(p_user text, p_start timestamptz, p_end timestamptz, p_tokens bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO usage_periods AS u (user_id, period_start, period_end, used)
    VALUES (p_user, p_start, p_end, p_tokens)
    ON CONFLICT (user_id, period_start)
    DO UPDATE SET used = least(u.used::numeric + excluded.used, 9223372036854775807)::bigint;
END
$$;

-- reserve: the admission rule (freemium.Hold) and the hold, atomically.
-- p_limit < 0 is Unlimited.
CREATE FUNCTION reserve(p_id text, p_user text, p_tokens bigint, p_limit bigint, p_first_free boolean,
                        p_start timestamptz, p_end timestamptz, p_every_us bigint,
                        p_expires timestamptz, p_now timestamptz)
RETURNS TABLE (period_start timestamptz, period_end timestamptz, used bigint, reserved bigint,
               first_report_used boolean, first_report_held boolean,
               admitted boolean, first_report boolean)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    s record;
    v_first boolean;
    v_admitted boolean;
BEGIN
    -- A hold need not survive a crash (it expires anyway), so its commit does
    -- not wait for the WAL flush. Commit, which records usage, does.
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_advisory_xact_lock(1718775089, hashtext(p_user));
    INSERT INTO accounts (user_id, anchor) VALUES (p_user, p_now) ON CONFLICT (user_id) DO NOTHING;
    DELETE FROM reservations r WHERE r.user_id = p_user AND r.expires_at < p_now - interval '24 hours';

    -- The user's state, in one statement (one snapshot). PostgresStore.Load
    -- runs the same query from Go: keep the two in step.
    SELECT w.period_start, w.period_end,
           coalesce(u.used, 0) AS used,
           coalesce(h.reserved, 0) AS reserved,
           coalesce(a.first_report_used, false) AS first_report_used,
           coalesce(h.first_held, false) AS first_report_held
    INTO s
    FROM (SELECT p_user AS user_id) me
    LEFT JOIN accounts a ON a.user_id = me.user_id
    CROSS JOIN LATERAL usage_window(p_start, p_end, p_every_us, a.anchor, p_now) w
    LEFT JOIN usage_periods u ON u.user_id = me.user_id AND u.period_start = w.period_start
    CROSS JOIN LATERAL (
        SELECT least(coalesce(sum(r.tokens), 0), 9223372036854775807)::bigint AS reserved,
               bool_or(r.first_report) AS first_held
        FROM reservations r
        WHERE r.user_id = me.user_id AND r.expires_at > p_now AND r.state = 'held'
    ) h;
    v_first := p_first_free AND NOT s.first_report_used AND NOT s.first_report_held;
    v_admitted := v_first OR p_limit < 0 OR s.used::numeric + s.reserved + p_tokens <= p_limit;
    IF v_admitted THEN
        INSERT INTO reservations (id, user_id, tokens, period_start, period_end, first_report, expires_at)
        VALUES (p_id, p_user, p_tokens, s.period_start, s.period_end, v_first, p_expires);
    END IF;
    RETURN QUERY SELECT s.period_start, s.period_end, s.used, s.reserved,
                        s.first_report_used, s.first_report_held, v_admitted, v_first;
END
$$;

-- commit_reservation records a hold's usage durably. Returns false for an
-- unknown ID; a committed hold is left as it is. It needs no user lock: the
-- hold's end and its usage land in one transaction, and Reserve reads both
-- in one statement, so it sees either the hold or the usage, never neither.
-- Two Commits of one hold serialize on the row.
CREATE FUNCTION commit_reservation(p_id text, p_tokens bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    r record;
BEGIN
    UPDATE reservations SET state = 'committed' WHERE id = p_id AND state <> 'committed'
    RETURNING user_id, period_start, period_end, first_report INTO r;
    IF NOT FOUND THEN
        RETURN EXISTS (SELECT 1 FROM reservations WHERE id = p_id);
    END IF;
    IF r.first_report THEN
        INSERT INTO accounts AS a (user_id, anchor, first_report_used)
        VALUES (r.user_id, r.period_start, true)
        ON CONFLICT (user_id) DO UPDATE SET first_report_used = true;
    ELSE -- the account exists unless the crash-unsafe Reserve that made it was lost
        INSERT INTO accounts (user_id, anchor) VALUES (r.user_id, r.period_start)
        ON CONFLICT (user_id) DO NOTHING;
    END IF;
    PERFORM add_usage(r.user_id, r.period_start, r.period_end, p_tokens);
    RETURN true;
END
$$;

-- cancel_reservation ends a held hold. Returns false for an unknown ID.
CREATE FUNCTION cancel_reservation(p_id text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true); -- holds need not be durable
    UPDATE reservations SET state = 'canceled' WHERE id = p_id AND state = 'held';
    RETURN FOUND OR EXISTS (SELECT 1 FROM reservations WHERE id = p_id);
END
$$;

-- record_usage adds usage without a reservation, once per non-empty key.
CREATE FUNCTION record_usage(p_user text, p_start timestamptz, p_end timestamptz, p_every_us bigint,
                             p_tokens bigint, p_key text, p_now timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_anchor timestamptz;
    w record;
BEGIN
    PERFORM pg_advisory_xact_lock(1718775089, hashtext(p_user));
    INSERT INTO accounts (user_id, anchor) VALUES (p_user, p_now) ON CONFLICT (user_id) DO NOTHING;
    IF p_key <> '' THEN
        INSERT INTO usage_keys (user_id, key, tokens, recorded_at)
        VALUES (p_user, p_key, p_tokens, p_now) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
    END IF;
    SELECT anchor INTO v_anchor FROM accounts WHERE user_id = p_user;
    w := usage_window(p_start, p_end, p_every_us, v_anchor, p_now);
    PERFORM add_usage(p_user, w.period_start, w.period_end, p_tokens);
    RETURN true;
END
$$;
