SELECT at, kind, tokens, key, reason, expires_at FROM (
	SELECT at, seq, kind, tokens, key, reason, expires_at FROM "freemium".ledger
	WHERE user_id = $1 AND at >= $2 AND at < $3
	UNION ALL
	SELECT expires_at, NULL, 'expire', -remaining, key, $5, NULL FROM "freemium".grants
	WHERE user_id = $1 AND remaining > 0 AND expires_at <= $4 AND expires_at >= $2 AND expires_at < $3
) e
ORDER BY at, seq NULLS LAST, key
