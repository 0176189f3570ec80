WITH acct AS (
	UPDATE "freemium".accounts a SET anchor = coalesce(a.anchor, $8), held = a.held + $3::bigint, held_until = least(a.held_until, $7),
		first_hold = CASE WHEN ($5 AND NOT a.first_report_used AND NOT coalesce(a.first_held_until > $8, false)) THEN $1 ELSE a.first_hold END,
		first_held_until = CASE WHEN ($5 AND NOT a.first_report_used AND NOT coalesce(a.first_held_until > $8, false)) THEN $7::timestamptz ELSE a.first_held_until END, last_hold = $1, last_tokens = $3, last_expires = $7, last_start = $6::timestamptz,
		last_first = ($5 AND NOT a.first_report_used AND NOT coalesce(a.first_held_until > $8, false)), last_committed = false, committed_prev = CASE WHEN a.last_committed THEN a.last_hold END
	WHERE a.user_id = $2 AND (a.held = 0 OR a.held_until > $8) AND (a.credits = 0 OR a.credits_until IS NULL OR a.credits_until > $8) AND (a.latest_start IS NULL OR a.latest_start <= $6::timestamptz)
	  AND ($10::bigint = 0 OR $10::bigint = (SELECT m.version FROM "freemium".subscriptions m WHERE m.user_id = $2))
	  AND (($5 AND NOT a.first_report_used AND NOT coalesce(a.first_held_until > $8, false)) OR $4::bigint < 0 OR (CASE WHEN a.latest_start IS NULL OR a.latest_start < $6::timestamptz THEN 0 WHEN a.latest_start = $6::timestamptz THEN a.latest_used END)::numeric + a.held + $3::bigint <= CASE WHEN a.credits > 0 THEN greatest($4::bigint, (CASE WHEN a.latest_start IS NULL OR a.latest_start < $6::timestamptz THEN 0 WHEN a.latest_start = $6::timestamptz THEN a.latest_used END)) + a.credits ELSE $4::bigint END)
	RETURNING $6::timestamptz AS ws, (CASE WHEN a.latest_start IS NULL OR a.latest_start < $6::timestamptz THEN 0 WHEN a.latest_start = $6::timestamptz THEN a.latest_used END) AS used,
	          CASE WHEN a.latest_start = $6::timestamptz THEN a.latest_notified ELSE 0 END AS notified,
	          least(a.held - $3::bigint, 9223372036854775807)::bigint AS reserved, a.first_report_used,
	          coalesce(a.first_hold <> $1 AND a.first_held_until > $8, false) AS first_held,
	          true AS admitted, coalesce(a.first_hold = $1, false) AS first, a.committed_prev, a.credits, a.credits_until
), res AS (
	INSERT INTO "freemium".reservations (id, user_id, period_start, first_report, expires_at, tokens, committed_prev,
		placed_by, db_expires, lim)
	SELECT $1, $2, ws, first, $7, $3, committed_prev, $9::bigint, statement_timestamp() + ($7::timestamptz - $8::timestamptz), $4
	FROM acct WHERE admitted
)
SELECT ws, used, notified, reserved, first_report_used, first_held, admitted, first, credits, credits_until,
       -- A hold need not survive a crash (it expires anyway): this
       -- transaction does not wait for the WAL flush. Commit, which records
       -- usage, does.
       set_config('synchronous_commit', 'off', true) IS NOT NULL
FROM acct
