WITH before AS (SELECT id, state FROM "freemium".notifications WHERE id = $1 FOR UPDATE),
retried AS (
	UPDATE "freemium".notifications n SET state = 'pending', attempts = 0, next_attempt_at = $2
	FROM before WHERE n.id = before.id AND before.state = 'failed'
)
SELECT state FROM before
