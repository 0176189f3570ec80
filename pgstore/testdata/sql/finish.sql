UPDATE "freemium".notifications SET attempts = attempts + 1, state = $2, last_error = $5,
	message_id = CASE WHEN $2 = 'sent' THEN $3 ELSE message_id END,
	sent_at = CASE WHEN $2 = 'sent' THEN $6::timestamptz ELSE sent_at END,
	next_attempt_at = CASE WHEN $2 = 'pending' THEN $4::timestamptz ELSE next_attempt_at END
WHERE id = $1 AND state = 'pending' AND next_attempt_at = $7
