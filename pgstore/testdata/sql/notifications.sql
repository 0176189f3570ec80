SELECT id, user_id, kind, usage, upgrade_url, created_at, state, attempts, message_id, sent_at, last_error
FROM "freemium".notifications WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at, id
