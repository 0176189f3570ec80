package freemium

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// An OutboxInspector is a Store that shows its outbox to operators: how
// much is waiting, what failed and why, and a way to try a failed
// notification again. The cmd/freemium tool and the OpenTelemetry gauges
// use it through Gate.OutboxStats, Gate.Outbox and Gate.RetryNotification.
// MemoryStore and pgstore.Store have it; the Gate finds it by type
// assertion.
type OutboxInspector interface {
	// OutboxStats counts the pending and failed notifications at now, and
	// gives the creation time of the oldest pending one.
	OutboxStats(ctx context.Context, now time.Time) (OutboxStats, error)
	// OutboxList returns up to limit notifications in state, oldest first
	// (by creation time, then ID).
	OutboxList(ctx context.Context, state DeliveryState, limit int) ([]NotificationRecord, error)
	// RetryNotification makes the failed notification id pending again,
	// due at now, with its attempts counted from zero; its last error is
	// kept until the next attempt. A notification that is not failed is
	// left as it is and reported with ErrNotFailed; an unknown ID is
	// ErrNotificationNotFound.
	RetryNotification(ctx context.Context, id string, now time.Time) error
}

// OutboxStats is a summary of the outbox, for a gauge or an operator.
type OutboxStats struct {
	Pending int `json:"pending"` // to be sent, due or not
	Failed  int `json:"failed"`  // given up
	// OldestPending is when the oldest pending notification was made;
	// zero when none is pending.
	OldestPending time.Time `json:"oldest_pending,omitzero"`
	// OldestPendingAge is how long before now, on the Gate's clock, the
	// oldest pending notification was made; 0 when none is pending. Set by
	// Gate.OutboxStats, not by Stores.
	OldestPendingAge time.Duration `json:"-"`
}

// Errors of RetryNotification.
var (
	// ErrNotificationNotFound: no notification has the ID.
	ErrNotificationNotFound = errors.New("freemium: notification not found")
	// ErrNotFailed: the notification is pending, sent or only recorded:
	// there is nothing to retry.
	ErrNotFailed = errors.New("freemium: notification is not failed")
)

// inspector is the Store as an OutboxInspector, for the method op.
func (g *Gate) inspector(op string) (OutboxInspector, error) {
	if oi, ok := g.cfg.Store.(OutboxInspector); ok {
		return oi, nil
	}
	return nil, fmt.Errorf("freemium: %s: Config.Store (%T) cannot show its outbox: it is no OutboxInspector", op, g.cfg.Store)
}

// OutboxStats summarizes the Store's outbox: pending and failed
// notifications, and the age of the oldest pending one. The Store must be
// an OutboxInspector.
func (g *Gate) OutboxStats(ctx context.Context) (OutboxStats, error) {
	oi, err := g.inspector("OutboxStats")
	if err != nil {
		return OutboxStats{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.StoreTimeout)
	defer cancel()
	now := g.now()
	st, err := oi.OutboxStats(ctx, now)
	if err != nil {
		return OutboxStats{}, fmt.Errorf("freemium: outbox stats: %w", err)
	}
	if !st.OldestPending.IsZero() {
		st.OldestPendingAge = max(0, now.Sub(st.OldestPending))
	}
	return st, nil
}

// Outbox lists up to limit notifications in state (DeliveryPending or
// DeliveryFailed, say), oldest first, with their attempts and last error.
// The Store must be an OutboxInspector.
func (g *Gate) Outbox(ctx context.Context, state DeliveryState, limit int) ([]NotificationRecord, error) {
	oi, err := g.inspector("Outbox")
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("freemium: Outbox: limit %d is not positive", limit)
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.StoreTimeout)
	defer cancel()
	recs, err := oi.OutboxList(ctx, state, limit)
	if err != nil {
		return nil, fmt.Errorf("freemium: outbox: %w", err)
	}
	return recs, nil
}

// RetryNotification gives a failed notification another series of
// attempts, starting now, for an operator who fixed what made it fail. A
// retry past Delivery.IdempotencyWindow gets one attempt: the provider no
// longer knows its key, so a second could deliver twice. The Store must be
// an OutboxInspector.
func (g *Gate) RetryNotification(ctx context.Context, id string) error {
	oi, err := g.inspector("RetryNotification")
	if err != nil {
		return err
	}
	if validateText(id) != nil || id == "" {
		return ErrNotificationNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.StoreTimeout)
	defer cancel()
	if err := oi.RetryNotification(ctx, id, g.now()); err != nil {
		return fmt.Errorf("freemium: retry notification %s: %w", id, err)
	}
	g.wakeDispatcher()
	return nil
}
