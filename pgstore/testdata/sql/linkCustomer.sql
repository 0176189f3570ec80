WITH c AS (
	INSERT INTO "freemium".customers AS c (customer_id, user_id, linked_at) VALUES ($2, $1, $3)
	ON CONFLICT (customer_id) DO UPDATE SET user_id = c.user_id
	RETURNING c.user_id
), link AS (
	INSERT INTO "freemium".subscriptions AS t (user_id, customer_id, version)
	SELECT $1, $2, 1 FROM c WHERE c.user_id = $1
	ON CONFLICT (user_id) DO UPDATE SET customer_id = excluded.customer_id, synced_at = '0001-01-01 00:00:00+00',
		version = t.version + 1
)
SELECT user_id FROM c
