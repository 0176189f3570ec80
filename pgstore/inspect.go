package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/freemiumkit/freemium"
)

var _ freemium.OutboxInspector = (*Store)(nil)

// outboxStatsSQL counts the pending and failed notifications and finds the
// oldest pending one; the partial index notifications_due holds the
// pending ones.
const outboxStatsSQL = `
SELECT count(*) FILTER (WHERE state = 'pending'),
       count(*) FILTER (WHERE state = 'failed'),
       min(created_at) FILTER (WHERE state = 'pending')
FROM {s}.notifications WHERE state IN ('pending', 'failed')`

// outboxListSQL lists the notifications in state $1, oldest first, at most $2.
const outboxListSQL = `
SELECT id, user_id, kind, usage, upgrade_url, created_at, state, attempts, message_id, sent_at, last_error
FROM {s}.notifications WHERE state = $1 ORDER BY created_at, id LIMIT $2`

// retryNotificationSQL makes the failed notification $1 pending again, due
// at $2, with its attempts counted from zero; it returns its state before,
// or no row for an unknown ID.
const retryNotificationSQL = `
WITH before AS (SELECT id, state FROM {s}.notifications WHERE id = $1 FOR UPDATE),
retried AS (
	UPDATE {s}.notifications n SET state = 'pending', attempts = 0, next_attempt_at = $2
	FROM before WHERE n.id = before.id AND before.state = 'failed'
)
SELECT state FROM before`

// OutboxStats implements freemium.OutboxInspector.
func (s *Store) OutboxStats(ctx context.Context, now time.Time) (freemium.OutboxStats, error) {
	var st freemium.OutboxStats
	var oldest pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, s.sql.outboxStats).Scan(&st.Pending, &st.Failed, &oldest)
	st.OldestPending = pgTime(oldest)
	return st, err
}

// OutboxList implements freemium.OutboxInspector.
func (s *Store) OutboxList(ctx context.Context, state freemium.DeliveryState, limit int) ([]freemium.NotificationRecord, error) {
	rows, _ := s.pool.Query(ctx, s.sql.outboxList, string(state), limit)
	return pgx.CollectRows(rows, scanNotification)
}

// RetryNotification implements freemium.OutboxInspector.
func (s *Store) RetryNotification(ctx context.Context, id string, now time.Time) error {
	var state string
	err := s.pool.QueryRow(ctx, s.sql.retryNotification, id, now).Scan(&state)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return freemium.ErrNotificationNotFound
	case err != nil:
		return err
	case state != string(freemium.DeliveryFailed):
		return freemium.ErrNotFailed
	}
	return nil
}

// scanNotification reads a row of the columns notificationsSQL selects.
func scanNotification(row pgx.CollectableRow) (freemium.NotificationRecord, error) {
	var r freemium.NotificationRecord
	var usage []byte
	var sentAt pgtype.Timestamptz
	if err := row.Scan(&r.ID, &r.UserID, &r.Kind, &usage, &r.UpgradeURL, &r.CreatedAt, &r.State,
		&r.Attempts, &r.MessageID, &sentAt, &r.LastError); err != nil {
		return r, err
	}
	r.CreatedAt, r.SentAt = r.CreatedAt.UTC(), pgTime(sentAt)
	return r, json.Unmarshal(usage, &r.Usage)
}
