SELECT FROM "freemium".accounts WHERE user_id = $1 FOR UPDATE
