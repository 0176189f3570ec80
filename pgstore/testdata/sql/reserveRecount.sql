WITH dropped AS (
	UPDATE "freemium".reservations r SET tokens = 0
	FROM "freemium".accounts a
	WHERE a.user_id = $1::text AND r.user_id = $1 AND NOT (a.held = 0 OR a.held_until > $2) AND r.tokens > 0 AND (r.row_state = 'held' AND NOT ((a.last_committed AND coalesce(a.last_hold = r.id, false))
	OR EXISTS (SELECT 1 FROM "freemium".reservations n WHERE n.user_id = r.user_id AND n.committed_prev = r.id))) AND NOT (CASE WHEN r.placed_by IS NULL OR r.placed_by = $3::bigint THEN r.expires_at > $2::timestamptz
	ELSE r.db_expires > statement_timestamp() END)
	RETURNING r.id
)
UPDATE "freemium".accounts a SET (held, held_until) = (
	SELECT coalesce(sum(r.tokens::numeric), 0), min((CASE WHEN r.placed_by IS NULL OR r.placed_by = $3::bigint THEN r.expires_at
	ELSE r.db_expires + ($2::timestamptz - statement_timestamp()) END)) FROM "freemium".reservations r
	WHERE r.user_id = $1 AND (r.row_state = 'held' AND NOT ((a.last_committed AND coalesce(a.last_hold = r.id, false))
	OR EXISTS (SELECT 1 FROM "freemium".reservations n WHERE n.user_id = r.user_id AND n.committed_prev = r.id))) AND (CASE WHEN r.placed_by IS NULL OR r.placed_by = $3::bigint THEN r.expires_at > $2::timestamptz
	ELSE r.db_expires > statement_timestamp() END)),
	last_tokens = CASE WHEN a.last_hold IN (SELECT id FROM dropped) THEN 0 ELSE a.last_tokens END
WHERE a.user_id = $1 AND NOT (a.held = 0 OR a.held_until > $2)
