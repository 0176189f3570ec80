SELECT coalesce((SELECT user_id FROM "freemium".customers WHERE customer_id = $1), '')
