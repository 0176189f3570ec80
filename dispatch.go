package freemium

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// dispatcher is the state of the delivery loop Start runs.
type dispatcher struct {
	mu     sync.Mutex
	cancel context.CancelFunc // nil when not running
	ctx    context.Context    // the loop's context
	done   chan struct{}      // closed when the loop has returned
	wake   chan struct{}      // an enqueue happened; buffered 1
}

// Start runs delivery of the outbox in the background: due notifications
// are sent through Config.Notifier as soon as they are enqueued (in this
// process) or within Delivery.PollInterval (from others), until Stop or
// until ctx ends. Any number of Gates, in one process or many, may run
// delivery on one Store: they share the work. New starts nothing; Start
// on a running Gate is an error.
func (g *Gate) Start(ctx context.Context) error {
	if g.cfg.Notifier == nil {
		return errors.New("freemium: Start: Config.Notifier is nil: there is nothing to deliver with")
	}
	d := &g.dispatch
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel != nil {
		if d.ctx.Err() == nil {
			return errors.New("freemium: Start: delivery is already running; Stop it first")
		}
		<-d.done // it ended with its context, and is returning
	}
	ctx, d.cancel = context.WithCancel(ctx)
	d.ctx = ctx
	d.done = make(chan struct{})
	go g.deliverLoop(ctx, d.done)
	return nil
}

// Stop ends the delivery Start began and waits for the sends in flight,
// or until ctx ends. A notification whose send is cut short is retried
// later. Stop without Start, and a second Stop, do nothing.
func (g *Gate) Stop(ctx context.Context) error {
	d := &g.dispatch
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel == nil {
		return nil
	}
	d.cancel()
	select {
	case <-d.done:
		d.cancel, d.done, d.ctx = nil, nil, nil
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Gate) deliverLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		claimed, _, err := g.dispatchOnce(ctx)
		if err != nil && ctx.Err() == nil {
			g.cfg.Logger.ErrorContext(ctx, "freemium: delivering notifications failed", "operation", "dispatch", "err", err)
		}
		if claimed == g.cfg.Delivery.BatchSize && err == nil {
			continue // more may be due
		}
		poll.Reset(g.cfg.Delivery.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-g.dispatch.wake:
		case <-poll.C:
		}
	}
}

// wakeDispatcher tells a running delivery loop that a notification is due.
func (g *Gate) wakeDispatcher() {
	select {
	case g.dispatch.wake <- struct{}{}:
	default:
	}
}

// DispatchOnce claims the notifications due now, up to Delivery.BatchSize,
// sends them through Config.Notifier, and records each outcome: sent (with
// the provider's message ID when the Notifier is a MessageSender), retried
// later with exponential backoff and jitter (at least the provider's
// Retry-After, up to Delivery.MaxBackoff), or failed for good (a permanent
// *NotifyError, Delivery.MaxAttempts tries, or a retry that would come
// after Delivery.IdempotencyWindow). It returns how many were sent. It is for
// hosts that drive delivery from their own job runner; Start runs it in a
// loop. The error is for the Store: a failed send is retried, not returned.
func (g *Gate) DispatchOnce(ctx context.Context) (int, error) {
	if g.cfg.Notifier == nil {
		return 0, errors.New("freemium: DispatchOnce: Config.Notifier is nil: there is nothing to deliver with")
	}
	_, sent, err := g.dispatchOnce(ctx)
	return sent, err
}

func (g *Gate) dispatchOnce(ctx context.Context) (claimed, sent int, err error) {
	cfg := g.cfg.Delivery
	// A claim lasts until every send of the batch, and the recording of its
	// outcome, could have timed out, so that another dispatcher takes over
	// only from one that died. (A late outcome is dropped by the Store.)
	rounds := (cfg.BatchSize + cfg.Concurrency - 1) / cfg.Concurrency
	lease := time.Duration(rounds+2) * cfg.SendTimeout
	// The claim is not observed: Start's loop polls every PollInterval,
	// and a span or a duration per empty poll is noise. A batch is.
	batch, err := g.store.ClaimNotifications(ctx, g.now(), cfg.BatchSize, lease)
	if err != nil {
		return 0, 0, fmt.Errorf("freemium: claim notifications: %w", err)
	}
	if len(batch) == 0 {
		return 0, 0, nil
	}
	ctx, start := g.begin(ctx, OpDispatch)
	defer func() { g.finish(ctx, OpDispatch, start, err) }()
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, cfg.Concurrency)
		nSent    atomic.Int64
		errMu    sync.Mutex
		firstErr error
	)
	for _, o := range batch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok, err := g.deliver(ctx, o)
			if ok {
				nSent.Add(1)
			}
			if err != nil {
				errMu.Lock()
				firstErr = cmp.Or(firstErr, err)
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(batch), int(nSent.Load()), firstErr
}

// deliver sends one claimed notification and records the outcome. It
// reports whether it was sent; the error is for the Store.
func (g *Gate) deliver(ctx context.Context, o Outbound) (bool, error) {
	var out Outcome
	var id string
	if o.Attempts > 0 && g.now().After(g.lastRetry(o)) {
		out = g.tooLate(ctx, o, o.Attempts, nil)
	} else {
		sctx, cancel := context.WithTimeout(ctx, g.cfg.Delivery.SendTimeout)
		o.TopUp = g.offer()
		var err error
		if ms, ok := g.cfg.Notifier.(MessageSender); ok {
			id, err = ms.Send(sctx, o.Notification)
		} else {
			err = g.cfg.Notifier.Notify(sctx, o.Notification)
		}
		cancel()
		out = g.outcome(ctx, o, err, g.now())
	}
	now := g.now()
	out.MessageID, out.Claim = id, o.ClaimedUntil
	g.Observe(ctx, Event{Kind: EventNotificationDelivered, Notification: o.Kind, Outcome: outcomeName(out.State), Attempt: o.Attempts + 1})
	// The outcome is recorded even when ctx ended (Stop): what was sent
	// must not be sent again.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.Delivery.SendTimeout)
	defer fcancel()
	if err := g.store.FinishNotification(fctx, o.ID, out, now); err != nil {
		return false, fmt.Errorf("freemium: record delivery of %s: %w", o.ID, err)
	}
	return out.State == DeliverySent, nil
}

// outcomeName is an Outcome's state as EventNotificationDelivered names it.
func outcomeName(s DeliveryState) string {
	switch s {
	case DeliverySent:
		return "sent"
	case DeliveryPending:
		return "retry"
	}
	return "failed"
}

// outcome decides what a send's error means for the notification, and
// logs a failure: a temporary one as a warning with the next retry, one
// given up on as an error.
func (g *Gate) outcome(ctx context.Context, o Outbound, err error, now time.Time) Outcome {
	if err == nil {
		return Outcome{State: DeliverySent}
	}
	attempts := o.Attempts + 1
	var ne *NotifyError
	permanent := errors.As(err, &ne) && ne.Permanent
	if errors.Is(err, ErrNoRecipient) {
		// Users without an address are ordinary, not an operator's problem.
		g.cfg.Logger.InfoContext(ctx, "freemium: notification not sent: the user has no address", "operation", "deliver",
			"notification_id", o.ID, "kind", o.Kind, g.UserAttr(o.UserID))
		return Outcome{State: DeliveryFailed, Error: err.Error()}
	}
	if permanent || attempts >= g.cfg.Delivery.MaxAttempts {
		g.cfg.Logger.ErrorContext(ctx, "freemium: notification failed for good", "operation", "deliver",
			"notification_id", o.ID, "kind", o.Kind, g.UserAttr(o.UserID), "attempt", attempts, "permanent", permanent, "err", err)
		return Outcome{State: DeliveryFailed, Error: err.Error()}
	}
	wait := g.backoff(attempts)
	if ne != nil && ne.RetryAfter > wait {
		// Capped: a provider's hours-long Retry-After must not carry the
		// retry past its idempotency window.
		wait = min(ne.RetryAfter, g.cfg.Delivery.MaxBackoff)
	}
	retry := now.Add(wait)
	if retry.After(g.lastRetry(o)) {
		return g.tooLate(ctx, o, attempts, err)
	}
	g.cfg.Logger.WarnContext(ctx, "freemium: notification not delivered; will retry", "operation", "deliver",
		"notification_id", o.ID, "kind", o.Kind, g.UserAttr(o.UserID), "attempt", attempts, "next_retry", retry, "err", err)
	return Outcome{State: DeliveryPending, Retry: retry, Error: err.Error()}
}

// lastRetry is the latest start of a retry of o that ends inside the
// provider's idempotency window. The window is counted from o's creation,
// which is no later than its first attempt, so it ends no later than the
// provider's.
func (g *Gate) lastRetry(o Outbound) time.Time {
	return o.CreatedAt.Add(g.cfg.Delivery.IdempotencyWindow - g.cfg.Delivery.SendTimeout)
}

// tooLate fails o, whose next attempt would come after the provider's
// idempotency window: it could deliver a second email if an earlier
// attempt was accepted. attempts were made; cause is the last one's error,
// when it was just made.
func (g *Gate) tooLate(ctx context.Context, o Outbound, attempts int, cause error) Outcome {
	err := fmt.Errorf("not retried: the provider's idempotency window (Delivery.IdempotencyWindow, %v from the "+
		"notification's creation) has passed, and a send it accepted earlier would be delivered again", g.cfg.Delivery.IdempotencyWindow)
	if cause != nil {
		err = fmt.Errorf("%w; last attempt: %w", err, cause)
	}
	g.cfg.Logger.ErrorContext(ctx, "freemium: notification failed for good: past the idempotency window", "operation", "deliver",
		"notification_id", o.ID, "kind", o.Kind, g.UserAttr(o.UserID), "attempt", attempts, "created_at", o.CreatedAt, "err", err)
	return Outcome{State: DeliveryFailed, Error: err.Error()}
}

// backoff is the wait after the attempts-th failure: Backoff doubled for
// each earlier failure, capped at MaxBackoff, of which a random half is
// waited (so that retries of many notifications spread out).
func (g *Gate) backoff(attempts int) time.Duration {
	d := g.cfg.Delivery.MaxBackoff
	if shift := attempts - 1; shift < 32 && g.cfg.Delivery.Backoff<<shift < d && g.cfg.Delivery.Backoff<<shift > 0 {
		d = g.cfg.Delivery.Backoff << shift
	}
	return d/2 + rand.N(d/2+1)
}
