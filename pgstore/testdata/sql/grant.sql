WITH g AS (
	INSERT INTO "freemium".grants (user_id, key, tokens, remaining, expires_at, reason, granted_at, top_up)
	VALUES ($1, $2, $3, $3, $4, $5, $6, $7)
	ON CONFLICT (user_id, key) DO NOTHING
	RETURNING remaining, expires_at
), entry AS (
	INSERT INTO "freemium".ledger (user_id, at, kind, tokens, key, reason, expires_at)
	SELECT $1, $6, 'grant', $3, $2, $5, $4 FROM g WHERE $3::bigint > 0
), credit_rows AS (
	SELECT remaining, expires_at FROM "freemium".grants WHERE user_id = $1
	UNION ALL SELECT remaining, expires_at FROM g
), acct AS (
	UPDATE "freemium".accounts a SET (credits, credits_until) = (
		SELECT least(coalesce(sum(c.remaining), 0), 9223372036854775807)::bigint, min(c.expires_at) FROM credit_rows c
		WHERE c.remaining > 0 AND (c.expires_at IS NULL OR c.expires_at > $6::timestamptz)) WHERE a.user_id = $1 AND EXISTS (SELECT 1 FROM g)
)
SELECT EXISTS (SELECT 1 FROM g)
