UPDATE "freemium".subscriptions SET subs = $2::jsonb, pulled_as_of = $3, synced_at = $4, version = $5 WHERE user_id = $1
