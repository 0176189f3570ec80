SELECT user_id, top_up, tokens, granted_at FROM "freemium".grants
WHERE top_up IS NOT NULL AND granted_at >= $1 AND granted_at < $2 ORDER BY granted_at
