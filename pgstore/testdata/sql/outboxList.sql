SELECT id, user_id, kind, usage, upgrade_url, created_at, state, attempts, message_id, sent_at, last_error
FROM "freemium".notifications WHERE state = $1 ORDER BY created_at, id LIMIT $2
