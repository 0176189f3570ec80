WITH r AS (
	UPDATE "freemium".reservations r SET row_state = 'committed'
	FROM "freemium".accounts a
	WHERE r.id = $1::text AND r.user_id = $4::text AND a.user_id = $4 AND r.row_state <> 'committed' AND NOT ((a.last_committed AND coalesce(a.last_hold = r.id, false))
	OR EXISTS (SELECT 1 FROM "freemium".reservations n WHERE n.user_id = r.user_id AND n.committed_prev = r.id))
	  AND r.expires_at >= $3::timestamptz - $5::bigint * interval '1 microsecond'
	RETURNING r.user_id, r.period_start, r.first_report, r.tokens, r.expires_at, r.lim
), src AS (
	SELECT user_id, period_start AS ws, $2::bigint AS tokens, 0::smallint AS bits FROM r
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
	UPDATE "freemium".accounts a SET held = a.held - r.tokens, held_until = CASE WHEN a.held = r.tokens THEN NULL ELSE a.held_until END, first_hold = CASE WHEN a.first_hold = $1 THEN NULL ELSE a.first_hold END, first_held_until = CASE WHEN a.first_hold = $1 THEN NULL ELSE a.first_held_until END, first_report_used = a.first_report_used OR r.first_report, latest_start = CASE WHEN cur.place = 1 THEN cur.ws ELSE a.latest_start END,
		latest_used = CASE WHEN cur.place >= 0 THEN cur.after ELSE a.latest_used END,
		latest_notified = CASE cur.place WHEN 1 THEN cur.bits
			WHEN 0 THEN a.latest_notified | cur.bits ELSE a.latest_notified END,
		last_hold = nullif(a.last_hold, $1), to_spend = CASE WHEN a.credits > 0 AND NOT r.first_report AND coalesce(r.lim, -1) >= 0 THEN greatest(cur.after - greatest(coalesce(r.lim, -1), cur.before), 0) ELSE 0 END
	FROM cur, r WHERE a.user_id = cur.user_id
)
SELECT EXISTS (SELECT 1 FROM r)
    OR EXISTS (SELECT 1 FROM "freemium".reservations WHERE id = $1 AND user_id = $4 AND expires_at >= $3::timestamptz - $5::bigint * interval '1 microsecond')
