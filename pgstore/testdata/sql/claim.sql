UPDATE "freemium".notifications SET next_attempt_at = $1::timestamptz + $3 * interval '1 microsecond'
WHERE id IN (
	SELECT id FROM "freemium".notifications WHERE state = 'pending' AND next_attempt_at <= $1
	ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING id, user_id, kind, usage, upgrade_url, created_at, attempts, next_attempt_at
