SELECT set_config('synchronous_commit', 'off', true) FROM "freemium".accounts WHERE user_id = $1 FOR UPDATE
