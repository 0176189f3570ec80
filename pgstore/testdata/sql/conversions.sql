SELECT user_id, plan, converted_at FROM "freemium".conversions
WHERE converted_at >= $1 AND converted_at < $2 ORDER BY converted_at
