INSERT INTO "freemium".accounts AS a (user_id, anchor, first_report_used) VALUES ($1, $2, true)
ON CONFLICT (user_id) DO UPDATE SET first_report_used = true, anchor = coalesce(a.anchor, excluded.anchor)
WHERE NOT a.first_report_used OR a.anchor IS NULL
