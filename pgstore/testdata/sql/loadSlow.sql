SELECT CASE WHEN a.latest_start = $2 THEN a.latest_used ELSE coalesce(u.used, 0) END,
       CASE WHEN a.latest_start = $2 THEN a.latest_notified ELSE coalesce(u.notified, 0) END,
       CASE WHEN a.held IS NULL THEN 0 WHEN (a.held = 0 OR a.held_until > $3) THEN least(a.held, 9223372036854775807)::bigint ELSE
           (SELECT least(coalesce(sum(r.tokens), 0), 9223372036854775807)::bigint FROM "freemium".reservations r
            WHERE r.user_id = $1 AND (r.row_state = 'held' AND NOT ((a.last_committed AND coalesce(a.last_hold = r.id, false))
	OR EXISTS (SELECT 1 FROM "freemium".reservations n WHERE n.user_id = r.user_id AND n.committed_prev = r.id))) AND (CASE WHEN r.placed_by IS NULL OR r.placed_by = $4::bigint THEN r.expires_at > $3::timestamptz
	ELSE r.db_expires > statement_timestamp() END)) END
FROM (SELECT 1) one
LEFT JOIN "freemium".accounts a ON a.user_id = $1
LEFT JOIN "freemium".usage_windows u ON u.user_id = $1 AND u.period_start = $2
