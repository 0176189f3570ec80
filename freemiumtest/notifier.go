package freemiumtest

import (
	"context"
	"sync"

	"github.com/freemiumkit/freemium"
)

// Notifier is a fake freemium.Notifier that records what it delivers. Like
// an email provider honouring idempotency keys, it delivers each
// Notification.ID once: a repeated ID succeeds without a second delivery,
// and Calls, which counts every call, tells the two apart. It can be made to
// fail. Safe for simultaneous use.
type Notifier struct {
	mu        sync.Mutex
	sent      []freemium.Notification
	delivered map[string]bool // IDs in sent
	err       error           // fails calls while set
	failN     int             // how many more calls fail with err; -1: until cleared
	calls     int
}

var _ freemium.Notifier = (*Notifier)(nil)

// NewNotifier returns a Notifier that has delivered nothing and does not fail.
func NewNotifier() *Notifier {
	return &Notifier{delivered: map[string]bool{}}
}

// Notify implements freemium.Notifier.
func (f *Notifier) Notify(ctx context.Context, n freemium.Notification) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.err != nil && f.failN != 0 {
		if f.failN > 0 {
			f.failN--
		}
		return f.err
	}
	if !f.delivered[n.ID] {
		f.delivered[n.ID] = true
		f.sent = append(f.sent, n)
	}
	return nil
}

// Sent returns the delivered notifications, once per ID, in delivery order.
func (f *Notifier) Sent() []freemium.Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]freemium.Notification(nil), f.sent...)
}

// Calls returns how many times Notify was called, failed calls and repeated
// IDs included.
func (f *Notifier) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// FailNext makes the next n calls fail with err, and then succeed again.
// For a temporary failure pass any error; for a permanent one, a
// *freemium.NotifyError with Permanent set.
func (f *Notifier) FailNext(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.failN = err, n
	if err == nil || n <= 0 {
		f.err, f.failN = nil, 0
	}
}

// SetError makes every call fail with err, until SetError(nil).
func (f *Notifier) SetError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.failN = err, -1
	if err == nil {
		f.failN = 0
	}
}
