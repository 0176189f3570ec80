// Package freemiumtest has helpers for testing code that uses freemium: a
// settable clock, a fake subscription checker that behaves like a real one,
// a recording notifier that delivers each notification ID once, and
// RunStoreTests, the suite every freemium.Store must pass.
package freemiumtest

import (
	"sync"
	"time"
)

// Clock is a settable clock for freemium.Config.Now. It stands still until
// told to move. Safe for simultaneous use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at start.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
