package freemiumtest

import (
	"context"
	"slices"
	"sync"

	"github.com/freemiumkit/freemium"
)

// Observer is a fake freemium.Observer that records the operations that
// ended and the events, for a host's tests of what its Gate reports
// ("a blocked report counts a blocked decision"). Safe for simultaneous
// use.
type Observer struct {
	mu     sync.Mutex
	ended  []Ended
	events []freemium.Event
}

// Ended is an operation as Observer.End saw it.
type Ended struct {
	Op     freemium.Op
	Result freemium.OpResult
}

var _ freemium.Observer = (*Observer)(nil)

// NewObserver returns an Observer that has seen nothing.
func NewObserver() *Observer { return &Observer{} }

// Start implements freemium.Observer: it returns ctx.
func (o *Observer) Start(ctx context.Context, _ freemium.Op) context.Context { return ctx }

// End implements freemium.Observer.
func (o *Observer) End(_ context.Context, op freemium.Op, r freemium.OpResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ended = append(o.ended, Ended{Op: op, Result: r})
}

// Event implements freemium.Observer.
func (o *Observer) Event(_ context.Context, e freemium.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, e)
}

// Ended returns the operations that ended, in order.
func (o *Observer) Ended() []Ended {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.ended)
}

// Decisions returns the decisions of the Checks and Reserves that ended,
// in order.
func (o *Observer) Decisions() []freemium.Decision {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ds []freemium.Decision
	for _, e := range o.ended {
		if e.Result.Decided {
			ds = append(ds, e.Result.Decision)
		}
	}
	return ds
}

// Events returns the events, in order.
func (o *Observer) Events() []freemium.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.events)
}
