WITH acct AS (
	UPDATE "freemium".accounts a SET latest_used = least(a.latest_used::numeric + $4::bigint, 9223372036854775807)::bigint
	WHERE a.user_id = $1::text AND a.anchor IS NOT NULL AND a.latest_start = (CASE WHEN $3::bigint > 0 THEN date_bin($3 * interval '1 microsecond', greatest($6::timestamptz, a.anchor), coalesce(a.anchor, $6)) ELSE $2::timestamptz END) AND a.credits = 0
	  AND ($5::text = '' OR NOT EXISTS (SELECT 1 FROM "freemium".usage_keys k WHERE k.user_id = $1 AND k.key = $5))
	RETURNING 1
), k AS (
	INSERT INTO "freemium".usage_keys (user_id, key, tokens, recorded_at)
	SELECT $1, $5, $4, $6::timestamptz FROM acct WHERE $5 <> ''
	ON CONFLICT DO NOTHING
	RETURNING 1
)
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM acct)
            THEN $5 <> '' AND EXISTS (SELECT 1 FROM "freemium".usage_keys k WHERE k.user_id = $1 AND k.key = $5)
            WHEN $5 = '' OR EXISTS (SELECT 1 FROM k) THEN true
            ELSE "freemium".raise_retry('freemium: record: a racing Record recorded the key') END
