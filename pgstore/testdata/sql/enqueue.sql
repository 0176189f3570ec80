WITH src AS (
	SELECT a.user_id, $5::timestamptz AS ws, 0::bigint AS tokens, $4::smallint AS bits
	FROM "freemium".accounts a LEFT JOIN "freemium".usage_windows u ON u.user_id = a.user_id AND u.period_start = $5
	WHERE a.user_id = $2::text AND CASE WHEN a.latest_start = $5 THEN a.latest_notified
	                                    WHEN a.latest_start > $5 THEN coalesce(u.notified, 0::smallint)
	                                    ELSE 0::smallint END & $4 = 0
), at AS (
	SELECT a.user_id, a.latest_start, a.latest_used, a.latest_notified, src.ws, src.tokens, src.bits,
	       CASE WHEN a.latest_start IS NULL OR a.latest_start < src.ws THEN 1
	            WHEN a.latest_start = src.ws THEN 0 ELSE -1 END AS place
	FROM src JOIN "freemium".accounts a ON a.user_id = src.user_id
), was AS (
	SELECT at.*, CASE place WHEN 1 THEN 0 WHEN 0 THEN latest_used ELSE coalesce(
	           (SELECT u.used FROM "freemium".usage_windows u WHERE u.user_id = at.user_id AND u.period_start = at.ws), 0) END AS before
	FROM at
), cur AS (
	SELECT was.*, greatest(least(before::numeric + tokens, 9223372036854775807), 0)::bigint AS after FROM was
), moved AS (
	INSERT INTO "freemium".usage_windows (user_id, period_start, used, notified)
	SELECT user_id, latest_start, latest_used, latest_notified FROM cur WHERE place = 1 AND latest_start IS NOT NULL
	ON CONFLICT (user_id, period_start) DO UPDATE SET used = excluded.used, notified = excluded.notified
), older AS (
	INSERT INTO "freemium".usage_windows AS u (user_id, period_start, used, notified)
	SELECT user_id, ws, after, bits FROM cur WHERE place = -1
	ON CONFLICT (user_id, period_start) DO UPDATE SET used = excluded.used, notified = u.notified | excluded.notified
), acct AS (
	UPDATE "freemium".accounts a SET latest_start = CASE WHEN cur.place = 1 THEN cur.ws ELSE a.latest_start END,
		latest_used = CASE WHEN cur.place >= 0 THEN cur.after ELSE a.latest_used END,
		latest_notified = CASE cur.place WHEN 1 THEN cur.bits
			WHEN 0 THEN a.latest_notified | cur.bits ELSE a.latest_notified END FROM cur WHERE a.user_id = cur.user_id
), ins AS (
	INSERT INTO "freemium".notifications (id, user_id, kind, period_start, usage, upgrade_url, created_at, state, next_attempt_at)
	SELECT $1, $2, $3, $5, $6, $7, $8, $9, $10 FROM src
	ON CONFLICT (id) DO NOTHING
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM ins)
