-- Credits: grants of tokens spent past the plan's allowance, and the
-- ledger of every change to them. Run with search_path set to the store's
-- schema, after 001_init.

-- accounts.credits: the tokens left in the user's grants that were live
--   when they were last counted (every write of a grant counts them
--   again). Exact while credits = 0 or credits_until is NULL or after now;
--   otherwise a grant expired since, and Load and Reserve count them from
--   grants.
-- accounts.credits_until: the earliest expiry of those grants; NULL when
--   none expires.
-- accounts.to_spend: set by a write of usage (Commit, Record) for the
--   statement after it in the same transaction, which spends it from the
--   grants (spendSQL) and sets it back to 0.
ALTER TABLE accounts
    ADD COLUMN credits       bigint NOT NULL DEFAULT 0 CHECK (credits >= 0),
    ADD COLUMN credits_until timestamptz,
    ADD COLUMN to_spend      bigint NOT NULL DEFAULT 0;

-- reservations.lim: the hold's Limit (negative: Unlimited), for the spend
-- from grants at its Commit. NULL for holds placed before this migration:
-- they spend nothing.
ALTER TABLE reservations ADD COLUMN lim bigint;

-- grants: each grant of tokens to a user, by its key. remaining is what is
-- left of it: spends and a revocation take from it; at expires_at (NULL:
-- never) what is left stops counting, and stays, so that the ledger can
-- show it expiring. seq orders grants of one expiry oldest first. top_up
-- is the price of a top-up bought, NULL for other grants.
CREATE TABLE grants (
    user_id    text        NOT NULL COLLATE "C",
    key        text        NOT NULL COLLATE "C",
    seq        bigserial   NOT NULL,
    tokens     bigint      NOT NULL CHECK (tokens >= 0), -- 0: the key is taken, nothing granted
    remaining  bigint      NOT NULL CHECK (remaining >= 0),
    expires_at timestamptz,
    reason     text        NOT NULL DEFAULT '',
    granted_at timestamptz NOT NULL,
    top_up     text,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX grants_top_ups ON grants (granted_at) WHERE top_up IS NOT NULL;

-- ledger: grants, spends from grants, revocations and adjustments, per
-- user, oldest first by seq. Expiries are not rows: Ledger reads them from
-- grants. An adjustment's key is recorded once per user.
CREATE TABLE ledger (
    seq        bigserial   PRIMARY KEY,
    user_id    text        NOT NULL COLLATE "C",
    at         timestamptz NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('grant', 'spend', 'revoke', 'adjust')),
    tokens     bigint      NOT NULL,
    key        text        NOT NULL COLLATE "C",
    reason     text        NOT NULL DEFAULT '',
    expires_at timestamptz
);
CREATE INDEX ledger_user ON ledger (user_id, at);
CREATE UNIQUE INDEX ledger_adjust_key ON ledger (user_id, key) WHERE kind = 'adjust';
