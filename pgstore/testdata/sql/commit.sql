UPDATE "freemium".accounts a SET held = a.held - a.last_tokens, held_until = CASE WHEN a.held = a.last_tokens THEN NULL ELSE a.held_until END, latest_used = least(a.latest_used::numeric + $2::bigint, 9223372036854775807)::bigint,
	last_committed = true
WHERE a.user_id = $3::text AND a.last_hold = $1::text AND NOT a.last_committed AND a.latest_start = a.last_start
  AND a.last_expires >= $4::timestamptz - $5::bigint * interval '1 microsecond' AND NOT a.last_first AND a.credits = 0
RETURNING true
