WITH gone AS (
	DELETE FROM "freemium".reservations WHERE id IN (
		SELECT id FROM "freemium".reservations WHERE expires_at < $1::timestamptz - $2::bigint * interval '1 microsecond'
		ORDER BY expires_at LIMIT 2048 FOR UPDATE SKIP LOCKED)
	RETURNING id, committed_prev
)
UPDATE "freemium".reservations r SET row_state = 'committed' FROM gone
WHERE r.id = gone.committed_prev AND r.row_state = 'held' AND r.id NOT IN (SELECT id FROM gone)
