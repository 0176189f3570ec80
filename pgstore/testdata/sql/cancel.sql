WITH cfg AS (
	SELECT set_config('synchronous_commit', 'off', true) AS v -- holds need not be durable
), held AS (
	UPDATE "freemium".reservations r SET row_state = 'canceled', tokens = 0
	FROM "freemium".reservations o, "freemium".accounts a
	WHERE r.id = $1::text AND o.id = $1 AND r.user_id = $3::text AND a.user_id = $3 AND (r.row_state = 'held' AND NOT ((a.last_committed AND coalesce(a.last_hold = r.id, false))
	OR EXISTS (SELECT 1 FROM "freemium".reservations n WHERE n.user_id = r.user_id AND n.committed_prev = r.id)))
	  AND r.expires_at >= $2::timestamptz - $4::bigint * interval '1 microsecond'
	RETURNING r.user_id, o.tokens, r.expires_at
), acct AS (
	UPDATE "freemium".accounts a SET held = a.held - r.tokens, held_until = CASE WHEN a.held = r.tokens THEN NULL ELSE a.held_until END, first_hold = CASE WHEN a.first_hold = $1 THEN NULL ELSE a.first_hold END, first_held_until = CASE WHEN a.first_hold = $1 THEN NULL ELSE a.first_held_until END, last_hold = nullif(a.last_hold, $1) FROM held r WHERE a.user_id = r.user_id
)
SELECT (SELECT v FROM cfg) IS NOT NULL
   AND (EXISTS (SELECT 1 FROM held)
        OR EXISTS (SELECT 1 FROM "freemium".reservations WHERE id = $1 AND user_id = $3 AND expires_at >= $2::timestamptz - $4::bigint * interval '1 microsecond'))
