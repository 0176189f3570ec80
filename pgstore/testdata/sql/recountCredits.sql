WITH credit_rows AS (
	SELECT remaining, expires_at FROM "freemium".grants WHERE user_id = $1::text
)
UPDATE "freemium".accounts a SET (credits, credits_until) = (
		SELECT least(coalesce(sum(c.remaining), 0), 9223372036854775807)::bigint, min(c.expires_at) FROM credit_rows c
		WHERE c.remaining > 0 AND (c.expires_at IS NULL OR c.expires_at > $2::timestamptz))
WHERE a.user_id = $1 AND NOT (a.credits = 0 OR a.credits_until IS NULL OR a.credits_until > $2)
