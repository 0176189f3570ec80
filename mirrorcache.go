package freemium

import "sync"

// mirrorCacheSize bounds the mirrors a Gate remembers: about 100 bytes
// each, more for users with several subscriptions.
const mirrorCacheSize = 1 << 16

// mirrorCache remembers the last fresh mirror a Gate read of each user, so
// that Reserve can decide the plan without reading the Store first: the
// hold names the mirror's Version, and the Store places it only while the
// mirror has that Version (Hold.Mirror). A mirror written since (by this
// Gate or any other) makes the Store refuse the hold as MirrorMoved, and
// the Gate reads the mirror again. So a remembered mirror saves a round
// trip, and can never decide on a plan the Store's mirror does not give.
// Safe for simultaneous use.
type mirrorCache struct {
	mu sync.Mutex
	m  map[string]SubscriptionMirror
}

// get returns the mirror remembered for the user.
func (c *mirrorCache) get(userID string) (SubscriptionMirror, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.m[userID]
	return m, ok
}

// put remembers m for the user, unless it is the one remembered already.
// When full it forgets an arbitrary user.
func (c *mirrorCache) put(userID string, m SubscriptionMirror) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if held, ok := c.m[userID]; ok && held.Version == m.Version && held.SyncedAt.Equal(m.SyncedAt) {
		return
	}
	if c.m == nil {
		c.m = map[string]SubscriptionMirror{}
	}
	if len(c.m) >= mirrorCacheSize {
		for u := range c.m {
			delete(c.m, u)
			break
		}
	}
	c.m[userID] = m
}

// forget drops the user's mirror.
func (c *mirrorCache) forget(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, userID)
}
