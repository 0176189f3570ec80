WITH g AS (
	SELECT remaining, remaining > 0 AND (expires_at IS NULL OR expires_at > $4::timestamptz) AS live
	FROM "freemium".grants WHERE user_id = $1::text AND key = $2::text
), r AS (
	UPDATE "freemium".grants t SET remaining = 0 FROM g WHERE t.user_id = $1 AND t.key = $2 AND g.live
	RETURNING g.remaining AS n
), entry AS (
	INSERT INTO "freemium".ledger (user_id, at, kind, tokens, key, reason) SELECT $1, $4, 'revoke', -n, $2, $3 FROM r
), credit_rows AS (
	SELECT CASE WHEN key = $2 THEN 0 ELSE remaining END AS remaining, expires_at FROM "freemium".grants WHERE user_id = $1
), acct AS (
	UPDATE "freemium".accounts a SET (credits, credits_until) = (
		SELECT least(coalesce(sum(c.remaining), 0), 9223372036854775807)::bigint, min(c.expires_at) FROM credit_rows c
		WHERE c.remaining > 0 AND (c.expires_at IS NULL OR c.expires_at > $4::timestamptz)) WHERE a.user_id = $1 AND EXISTS (SELECT 1 FROM r)
)
SELECT EXISTS (SELECT 1 FROM g), coalesce((SELECT n FROM r), 0)
