INSERT INTO "freemium".subscriptions AS t (user_id) VALUES ($1)
ON CONFLICT (user_id) DO UPDATE SET user_id = t.user_id
RETURNING t.subs, t.pulled_as_of, t.synced_at, t.version
