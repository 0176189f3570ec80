INSERT INTO "freemium".accounts AS a (user_id, anchor) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET anchor = excluded.anchor WHERE a.anchor IS NULL
