SELECT least(coalesce(sum(remaining), 0), 9223372036854775807)::bigint, min(expires_at) FROM "freemium".grants
WHERE user_id = $1 AND remaining > 0 AND (expires_at IS NULL OR expires_at > $2::timestamptz)
