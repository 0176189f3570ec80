WITH older AS (
	SELECT u.used, u.notified FROM "freemium".accounts a, "freemium".usage_windows u
	WHERE a.user_id = $2::text AND u.user_id = $2 AND u.period_start = (CASE WHEN $9::bigint > 0 THEN date_bin($9 * interval '1 microsecond', greatest($8::timestamptz, a.anchor), coalesce(a.anchor, $8)) ELSE $6::timestamptz END) AND (CASE WHEN $9::bigint > 0 THEN date_bin($9 * interval '1 microsecond', greatest($8::timestamptz, a.anchor), coalesce(a.anchor, $8)) ELSE $6::timestamptz END) < a.latest_start
), acct AS (
	UPDATE "freemium".accounts a SET (anchor, held, held_until, first_hold, first_held_until,
		last_hold, last_tokens, last_expires, last_start, last_first, last_committed, committed_prev) = (
		SELECT coalesce(a.anchor, $8), a.held + CASE WHEN v.ok THEN $3::bigint ELSE 0 END,
		       CASE WHEN v.ok THEN least(a.held_until, $7) ELSE a.held_until END,
		       CASE WHEN v.ok AND v.claim THEN $1 ELSE a.first_hold END,
		       CASE WHEN v.ok AND v.claim THEN $7 ELSE a.first_held_until END,
		       CASE WHEN v.ok THEN $1 ELSE a.last_hold END,
		       CASE WHEN v.ok THEN $3::bigint ELSE a.last_tokens END,
		       CASE WHEN v.ok THEN $7::timestamptz ELSE a.last_expires END,
		       CASE WHEN v.ok THEN (CASE WHEN $9::bigint > 0 THEN date_bin($9 * interval '1 microsecond', greatest($8::timestamptz, a.anchor), coalesce(a.anchor, $8)) ELSE $6::timestamptz END) ELSE a.last_start END,
		       CASE WHEN v.ok THEN v.claim ELSE a.last_first END,
		       a.last_committed AND NOT v.ok,
		       CASE WHEN NOT v.ok THEN a.committed_prev WHEN a.last_committed THEN a.last_hold END
		FROM (SELECT c.claim OR $4::bigint < 0 OR c.used::numeric + a.held + $3::bigint <= CASE WHEN a.credits > 0 THEN greatest($4::bigint, c.used) + a.credits ELSE $4::bigint END AS ok, c.claim
		      FROM (SELECT ($5 AND NOT a.first_report_used AND NOT coalesce(a.first_held_until > $8, false)) AS claim, coalesce(CASE WHEN a.latest_start IS NULL OR a.latest_start < (CASE WHEN $9::bigint > 0 THEN date_bin($9 * interval '1 microsecond', greatest($8::timestamptz, a.anchor), coalesce(a.anchor, $8)) ELSE $6::timestamptz END) THEN 0 WHEN a.latest_start = (CASE WHEN $9::bigint > 0 THEN date_bin($9 * interval '1 microsecond', greatest($8::timestamptz, a.anchor), coalesce(a.anchor, $8)) ELSE $6::timestamptz END) THEN a.latest_used END, (SELECT o.used FROM older o), 0) AS used) c) v)
	WHERE a.user_id = $2 AND ($11::bigint = 0 OR $11::bigint = (SELECT m.version FROM "freemium".subscriptions m WHERE m.user_id = $2))
	RETURNING (CASE WHEN $9::bigint > 0 THEN date_bin($9 * interval '1 microsecond', greatest($8::timestamptz, a.anchor), coalesce(a.anchor, $8)) ELSE $6::timestamptz END) AS ws, coalesce(CASE WHEN a.latest_start IS NULL OR a.latest_start < (CASE WHEN $9::bigint > 0 THEN date_bin($9 * interval '1 microsecond', greatest($8::timestamptz, a.anchor), coalesce(a.anchor, $8)) ELSE $6::timestamptz END) THEN 0 WHEN a.latest_start = (CASE WHEN $9::bigint > 0 THEN date_bin($9 * interval '1 microsecond', greatest($8::timestamptz, a.anchor), coalesce(a.anchor, $8)) ELSE $6::timestamptz END) THEN a.latest_used END, (SELECT o.used FROM older o), 0) AS used, coalesce(CASE WHEN a.latest_start = (CASE WHEN $9::bigint > 0 THEN date_bin($9 * interval '1 microsecond', greatest($8::timestamptz, a.anchor), coalesce(a.anchor, $8)) ELSE $6::timestamptz END) THEN a.latest_notified END, (SELECT o.notified FROM older o), 0) AS notified, least(a.held - CASE WHEN a.last_hold = $1 THEN $3::bigint ELSE 0 END, 9223372036854775807)::bigint AS reserved, a.first_report_used, coalesce(a.first_hold <> $1 AND a.first_held_until > $8, false) AS first_held, coalesce(a.last_hold = $1, false) AS admitted, coalesce(a.first_hold = $1, false) AS first, a.committed_prev,
	          a.credits, a.credits_until
), res AS (
	INSERT INTO "freemium".reservations (id, user_id, period_start, first_report, expires_at, tokens, committed_prev,
		placed_by, db_expires, lim)
	SELECT $1, $2, ws, first, $7, $3, committed_prev, $10::bigint, statement_timestamp() + ($7::timestamptz - $8::timestamptz), $4
	FROM acct WHERE admitted
)
SELECT ws, used, notified, reserved, first_report_used, first_held, admitted, first, credits, credits_until, NULL
FROM acct
