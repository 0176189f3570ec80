SELECT a.anchor, a.first_report_used, CASE WHEN a.held IS NULL THEN 0 WHEN (a.held = 0 OR a.held_until > $2) THEN least(a.held, 9223372036854775807)::bigint END, a.first_held_until,
       s.customer_id, s.subs, s.pulled_as_of, s.synced_at, s.version,
       a.latest_start, a.latest_used, a.latest_notified, a.credits, a.credits_until
FROM (SELECT 1) one
LEFT JOIN "freemium".accounts a ON a.user_id = $1
LEFT JOIN "freemium".subscriptions s ON s.user_id = $1
