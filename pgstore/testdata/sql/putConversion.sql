INSERT INTO "freemium".conversions (user_id, plan, converted_at) VALUES ($1, $2, $3)
