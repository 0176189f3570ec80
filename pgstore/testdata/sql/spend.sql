WITH owed AS (
	SELECT to_spend FROM "freemium".accounts WHERE user_id = $1::text AND to_spend > 0
), live AS (
	SELECT g.key, g.seq, g.remaining, g.expires_at,
	       sum(g.remaining) OVER (ORDER BY g.expires_at NULLS LAST, g.seq) - g.remaining AS before
	FROM "freemium".grants g
	WHERE g.user_id = $1 AND g.remaining > 0 AND (g.expires_at IS NULL OR g.expires_at > $2::timestamptz)
	  AND EXISTS (SELECT 1 FROM owed)
), take AS (
	SELECT l.key, least(l.remaining, o.to_spend - l.before)::bigint AS n, l.expires_at, l.seq
	FROM live l, owed o WHERE l.before < o.to_spend
), spent AS (
	UPDATE "freemium".grants g SET remaining = g.remaining - t.n FROM take t WHERE g.user_id = $1 AND g.key = t.key
), entries AS (
	INSERT INTO "freemium".ledger (user_id, at, kind, tokens, key, reason)
	SELECT $1, $2, 'spend', -t.n, t.key, $3 FROM take t ORDER BY t.expires_at NULLS LAST, t.seq
), credit_rows AS (
	SELECT l.remaining - coalesce(t.n, 0) AS remaining, l.expires_at FROM live l LEFT JOIN take t ON t.key = l.key
)
UPDATE "freemium".accounts a SET to_spend = 0, (credits, credits_until) = (
		SELECT least(coalesce(sum(c.remaining), 0), 9223372036854775807)::bigint, min(c.expires_at) FROM credit_rows c
		WHERE c.remaining > 0 AND (c.expires_at IS NULL OR c.expires_at > $2::timestamptz))
WHERE a.user_id = $1 AND a.to_spend > 0
