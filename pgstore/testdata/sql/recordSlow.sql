WITH k AS (
	INSERT INTO "freemium".usage_keys (user_id, key, tokens, recorded_at)
	SELECT $1::text, $5::text, $4::bigint, $6::timestamptz WHERE $5 <> ''
	ON CONFLICT DO NOTHING
	RETURNING 1
), src AS (
	SELECT a.user_id, (CASE WHEN $3::bigint > 0 THEN date_bin($3 * interval '1 microsecond', greatest($6::timestamptz, a.anchor), coalesce(a.anchor, $6)) ELSE $2::timestamptz END) AS ws, $4::bigint AS tokens, 0::smallint AS bits
	FROM "freemium".accounts a WHERE a.user_id = $1 AND ($5 = '' OR EXISTS (SELECT 1 FROM k))
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
			WHEN 0 THEN a.latest_notified | cur.bits ELSE a.latest_notified END, to_spend = CASE WHEN a.credits > 0 AND NOT false AND $7::bigint >= 0 THEN greatest(cur.after - greatest($7::bigint, cur.before), 0) ELSE 0 END FROM cur WHERE a.user_id = cur.user_id
)
SELECT
