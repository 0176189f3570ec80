package freemium

import (
	"cmp"
	"context"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemoryStore is a Store in this process's memory: the default for
// single-process services and for tests. It is safe for simultaneous use and
// runs no goroutine. Its state is lost when the process ends.
type MemoryStore struct {
	seed   maphash.Seed
	shards [memShards]memShard

	holdsMu sync.Mutex
	holds   map[string]*memHold // by ID, until HoldRetention after expiry

	// Lock order: customersMu, then a shard's mu.
	customersMu sync.Mutex
	customers   map[string]string // customer ID -> user ID

	conversionsMu sync.Mutex
	conversions   []Conversion
	topUps        []TopUpRecord

	// Lock order: a shard's mu, then outboxMu.
	outboxMu sync.Mutex
	outbox   []*memNotification // by creation
	byID     map[string]*memNotification
}

type memNotification struct {
	NotificationRecord
	due time.Time // when pending: when it may be claimed
}

var _ Store = (*MemoryStore)(nil)

// memShards spreads users over locks, so that users do not contend.
const memShards = 64

type memShard struct {
	mu    sync.RWMutex
	users map[string]*memUser
	_     [32]byte // keep neighbouring shards' locks off one cache line
}

type memUser struct {
	anchor    time.Time // zero until the first activity
	customer  string
	subs      SubscriptionMirror
	firstUsed bool
	used      map[int64]int64 // window start (Unix µs) -> tokens
	notified  map[int64]NotifiedKinds
	live      []*memHold // held holds, expired ones until the next Reserve
	retained  []*memHold // every hold, oldest first, until HoldRetention after expiry
	keys      map[string]struct{}
	grants    []*memGrant // oldest first
	ledger    []LedgerEntry
	adjusted  map[string]struct{} // adjustments' keys
}

type memGrant struct {
	key       string
	remaining int64
	expires   time.Time // zero: never
}

// live reports whether the grant counts at now.
func (c *memGrant) live(now time.Time) bool {
	return c.remaining > 0 && (c.expires.IsZero() || c.expires.After(now))
}

type holdState uint8

const (
	stateHeld holdState = iota
	stateCommitted
	stateCanceled
	stateGone // pruned; the pointer may still be in a caller's hands
)

type memHold struct {
	id, userID string
	tokens     int64
	limit      int64 // the hold's Limit, for the spend from grants at Commit
	start      time.Time
	first      bool
	expires    time.Time
	state      holdState // guarded by the user's shard lock
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	s := &MemoryStore{seed: maphash.MakeSeed(), holds: map[string]*memHold{}, customers: map[string]string{},
		byID: map[string]*memNotification{}}
	for i := range s.shards {
		s.shards[i].users = map[string]*memUser{}
	}
	return s
}

func (s *MemoryStore) shard(userID string) *memShard {
	return &s.shards[maphash.String(s.seed, userID)%memShards]
}

// Load implements Store.
func (s *MemoryStore) Load(ctx context.Context, userID string, now time.Time, window func(Account) Window) (State, error) {
	sh := s.shard(userID)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	u := sh.users[userID]
	return u.state(window(u.account()), now), nil
}

// account is what Load tells its window function; u may be nil.
func (u *memUser) account() Account {
	if u == nil {
		return Account{}
	}
	return Account{Anchor: u.anchor, CustomerID: u.customer, Subscriptions: u.subs}
}

// state is the user's state in w at now; u may be nil (a user never seen).
func (u *memUser) state(w Window, now time.Time) State {
	var st State
	if u == nil {
		st.PeriodStart, st.PeriodEnd = w.Bounds(time.Time{}, now)
		return st
	}
	st.Account = u.account()
	st.PeriodStart, st.PeriodEnd = w.Bounds(u.anchor, now)
	st.Used = u.used[st.PeriodStart.UnixMicro()]
	st.Notified = u.notified[st.PeriodStart.UnixMicro()]
	st.FirstReportUsed = u.firstUsed
	st.Credits, st.CreditsExpire = u.credits(now)
	for _, h := range u.live {
		if h.state == stateHeld && h.expires.After(now) {
			st.Reserved = addSat(st.Reserved, h.tokens)
			st.FirstReportHeld = st.FirstReportHeld || h.first
		}
	}
	return st
}

// user returns the user's record for an activity at now, creating it and
// anchoring the user at now if need be. The caller holds sh.mu.
func (sh *memShard) user(userID string, now time.Time) *memUser {
	u := sh.record(userID)
	if u.anchor.IsZero() {
		u.anchor = now
	}
	return u
}

// record returns the user's record, creating it unanchored. The caller
// holds sh.mu.
func (sh *memShard) record(userID string) *memUser {
	u := sh.users[userID]
	if u == nil {
		u = &memUser{used: map[int64]int64{}}
		sh.users[userID] = u
	}
	return u
}

// Reserve implements Store.
func (s *MemoryStore) Reserve(ctx context.Context, h Hold, now time.Time) (ReserveResult, error) {
	sh := s.shard(h.UserID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if h.Mirror != 0 && sh.users[h.UserID].account().Subscriptions.Version != h.Mirror {
		return ReserveResult{MirrorMoved: true}, nil
	}
	u := sh.user(h.UserID, now)
	s.prune(u, now)
	st := u.state(h.Window, now)
	admitted, first := h.Admit(st)
	if admitted {
		mh := &memHold{id: h.ID, userID: h.UserID, tokens: h.Tokens, limit: h.Limit, start: st.PeriodStart, first: first, expires: h.ExpiresAt}
		u.live = append(u.live, mh)
		u.retained = append(u.retained, mh)
		s.holdsMu.Lock()
		s.holds[h.ID] = mh
		s.holdsMu.Unlock()
	}
	return ReserveResult{State: st, Admitted: admitted, FirstReport: first}, nil
}

// prune drops ended and expired holds from the live list, and forgets holds
// that expired more than HoldRetention ago. Holds are retained in creation
// order, so forgetting stops at the first one still kept: amortized O(1).
// The caller holds the user's shard lock.
func (s *MemoryStore) prune(u *memUser, now time.Time) {
	u.live = slices.DeleteFunc(u.live, func(h *memHold) bool {
		return h.state != stateHeld || !h.expires.After(now)
	})
	cutoff := now.Add(-HoldRetention)
	n := 0
	for n < len(u.retained) && u.retained[n].expires.Before(cutoff) {
		h := u.retained[n]
		h.state = stateGone
		s.holdsMu.Lock()
		delete(s.holds, h.id)
		s.holdsMu.Unlock()
		n++
	}
	u.retained = slices.Delete(u.retained, 0, n)
}

// lookup finds ref's hold, if it is ref.UserID's and not yet HoldRetention
// past expiry, and locks its user's shard. The caller unlocks it.
func (s *MemoryStore) lookup(ref HoldRef, now time.Time) (*memHold, *memShard, error) {
	s.holdsMu.Lock()
	h := s.holds[ref.ID]
	s.holdsMu.Unlock()
	if h == nil || h.userID != ref.UserID {
		return nil, nil, ErrReservationNotFound
	}
	sh := s.shard(h.userID)
	sh.mu.Lock()
	if h.state == stateGone || h.expires.Before(now.Add(-HoldRetention)) {
		sh.mu.Unlock()
		return nil, nil, ErrReservationNotFound
	}
	return h, sh, nil
}

// Commit implements Store.
func (s *MemoryStore) Commit(ctx context.Context, ref HoldRef, tokens int64, now time.Time) error {
	h, sh, err := s.lookup(ref, now)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	if h.state == stateCommitted {
		return nil
	}
	h.state = stateCommitted
	u := sh.user(h.userID, h.start)
	k := h.start.UnixMicro()
	before := u.used[k]
	u.used[k] = addSat(before, tokens)
	u.firstUsed = u.firstUsed || h.first
	u.spend(SpendFromGrants(h.limit, before, tokens, h.first), now)
	return nil
}

// Cancel implements Store.
func (s *MemoryStore) Cancel(ctx context.Context, ref HoldRef, now time.Time) error {
	h, sh, err := s.lookup(ref, now)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	if h.state == stateHeld {
		h.state = stateCanceled
	}
	return nil
}

// Record implements Store.
func (s *MemoryStore) Record(ctx context.Context, userID string, w Window, limit, tokens int64, key string, now time.Time) error {
	sh := s.shard(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.user(userID, now)
	if key != "" {
		if _, seen := u.keys[key]; seen {
			return nil
		}
		if u.keys == nil {
			u.keys = map[string]struct{}{}
		}
		u.keys[key] = struct{}{}
	}
	start, _ := w.Bounds(u.anchor, now)
	k := start.UnixMicro()
	before := u.used[k]
	u.used[k] = addSat(before, tokens)
	u.spend(SpendFromGrants(limit, before, tokens, false), now)
	return nil
}

// MarkFirstReportUsed implements Store.
func (s *MemoryStore) MarkFirstReportUsed(ctx context.Context, userID string, now time.Time) error {
	sh := s.shard(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.user(userID, now).firstUsed = true
	return nil
}

// PutSubscriptions implements Store.
func (s *MemoryStore) PutSubscriptions(ctx context.Context, userID string, up SubscriptionUpdate, now time.Time) (changed, converted bool, err error) {
	sh := s.shard(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.record(userID)
	next, changed, converted := u.subs.Apply(up)
	if !changed {
		return false, false, nil
	}
	if converted {
		s.conversionsMu.Lock()
		at := up.AsOf
		if up.Pulled {
			at = up.SyncedAt
		}
		s.conversions = append(s.conversions, Conversion{UserID: userID, Plan: up.PaidPlan, At: at})
		s.conversionsMu.Unlock()
	}
	u.subs = next
	return true, converted, nil
}

// LinkCustomer implements Store.
func (s *MemoryStore) LinkCustomer(ctx context.Context, userID, customerID string, now time.Time) error {
	s.customersMu.Lock()
	defer s.customersMu.Unlock()
	if owner, ok := s.customers[customerID]; ok && owner != userID {
		return ErrCustomerLinked
	}
	s.customers[customerID] = userID
	sh := s.shard(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.record(userID)
	u.customer = customerID
	u.subs.SyncedAt = time.Time{}
	u.subs.Version++
	return nil
}

// CustomerUser implements Store.
func (s *MemoryStore) CustomerUser(ctx context.Context, customerID string) (string, error) {
	s.customersMu.Lock()
	defer s.customersMu.Unlock()
	return s.customers[customerID], nil
}

// Conversions implements Store.
func (s *MemoryStore) Conversions(ctx context.Context, from, to time.Time) ([]Conversion, error) {
	s.conversionsMu.Lock()
	defer s.conversionsMu.Unlock()
	return within(s.conversions, func(c Conversion) time.Time { return c.At }, from, to), nil
}

// within returns the items whose time at is in [from, to), oldest first
// (items of one time in their order).
func within[T any](items []T, at func(T) time.Time, from, to time.Time) []T {
	var out []T
	for _, it := range items {
		if t := at(it); !t.Before(from) && t.Before(to) {
			out = append(out, it)
		}
	}
	slices.SortStableFunc(out, func(a, b T) int { return at(a).Compare(at(b)) })
	return out
}

// Enqueue implements Store.
func (s *MemoryStore) Enqueue(ctx context.Context, n Notification, windowStart time.Time, deliver bool, now time.Time) (bool, error) {
	sh := s.shard(n.UserID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.record(n.UserID)
	k := windowStart.UnixMicro()
	if u.notified[k].Has(n.Kind) {
		return false, nil
	}
	if u.notified == nil {
		u.notified = map[int64]NotifiedKinds{}
	}
	u.notified[k] = u.notified[k].With(n.Kind)
	state := DeliveryNone
	if deliver {
		state = DeliveryPending
	}
	s.outboxMu.Lock()
	defer s.outboxMu.Unlock()
	if s.byID[n.ID] != nil {
		return false, nil
	}
	m := &memNotification{NotificationRecord: NotificationRecord{Notification: n, State: state}, due: now}
	s.outbox = append(s.outbox, m)
	s.byID[n.ID] = m
	return true, nil
}

// ClaimNotifications implements Store.
func (s *MemoryStore) ClaimNotifications(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Outbound, error) {
	s.outboxMu.Lock()
	defer s.outboxMu.Unlock()
	var out []Outbound
	for _, m := range s.outbox {
		if len(out) == limit {
			break
		}
		if m.State == DeliveryPending && !m.due.After(now) {
			m.due = now.Add(lease)
			out = append(out, Outbound{Notification: m.Notification, Attempts: m.Attempts, ClaimedUntil: m.due})
		}
	}
	return out, nil
}

// FinishNotification implements Store.
func (s *MemoryStore) FinishNotification(ctx context.Context, id string, o Outcome, now time.Time) error {
	s.outboxMu.Lock()
	defer s.outboxMu.Unlock()
	m := s.byID[id]
	if m == nil || m.State != DeliveryPending || !m.due.Equal(o.Claim) {
		return nil // unknown, or no longer this claim's
	}
	m.Attempts++
	m.State, m.LastError = o.State, o.Error
	switch o.State {
	case DeliverySent:
		m.MessageID, m.SentAt = o.MessageID, now
	case DeliveryPending:
		m.due = o.Retry
	}
	return nil
}

// Notifications implements Store.
func (s *MemoryStore) Notifications(ctx context.Context, from, to time.Time) ([]NotificationRecord, error) {
	s.outboxMu.Lock()
	defer s.outboxMu.Unlock()
	var out []NotificationRecord
	for _, m := range s.outbox {
		if !m.CreatedAt.Before(from) && m.CreatedAt.Before(to) {
			out = append(out, m.NotificationRecord)
		}
	}
	// Oldest first, as Postgres orders them: the outbox is in the order of
	// Enqueue, which Gates with other clocks need not call in time order.
	slices.SortFunc(out, func(a, b NotificationRecord) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

var _ OutboxInspector = (*MemoryStore)(nil)

// OutboxStats implements OutboxInspector.
func (s *MemoryStore) OutboxStats(ctx context.Context, now time.Time) (OutboxStats, error) {
	s.outboxMu.Lock()
	defer s.outboxMu.Unlock()
	var st OutboxStats
	for _, m := range s.outbox {
		switch m.State {
		case DeliveryPending:
			st.Pending++
			if st.OldestPending.IsZero() || m.CreatedAt.Before(st.OldestPending) {
				st.OldestPending = m.CreatedAt
			}
		case DeliveryFailed:
			st.Failed++
		}
	}
	return st, nil
}

// OutboxList implements OutboxInspector.
func (s *MemoryStore) OutboxList(ctx context.Context, state DeliveryState, limit int) ([]NotificationRecord, error) {
	s.outboxMu.Lock()
	var out []NotificationRecord
	for _, m := range s.outbox {
		if m.State == state {
			out = append(out, m.NotificationRecord)
		}
	}
	s.outboxMu.Unlock()
	slices.SortFunc(out, func(a, b NotificationRecord) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out[:min(len(out), limit)], nil
}

// RetryNotification implements OutboxInspector.
func (s *MemoryStore) RetryNotification(ctx context.Context, id string, now time.Time) error {
	s.outboxMu.Lock()
	defer s.outboxMu.Unlock()
	m := s.byID[id]
	switch {
	case m == nil:
		return ErrNotificationNotFound
	case m.State != DeliveryFailed:
		return ErrNotFailed
	}
	m.State, m.Attempts, m.due = DeliveryPending, 0, now
	return nil
}

// credits is the sum of the user's live grants at now, and the earliest
// expiry among them (zero when none expires); u may be nil.
func (u *memUser) credits(now time.Time) (sum int64, until time.Time) {
	if u == nil {
		return 0, time.Time{}
	}
	for _, c := range u.grants {
		if c.live(now) {
			sum = addSat(sum, c.remaining)
			if !c.expires.IsZero() && (until.IsZero() || c.expires.Before(until)) {
				until = c.expires
			}
		}
	}
	return sum, until
}

// spend takes up to n tokens from the user's live grants at now, earliest
// expiry first (then oldest first), with a ledger entry per grant. The
// caller holds the user's shard lock.
func (u *memUser) spend(n int64, now time.Time) {
	if n <= 0 {
		return
	}
	var live []*memGrant
	for _, c := range u.grants {
		if c.live(now) {
			live = append(live, c)
		}
	}
	slices.SortStableFunc(live, func(a, b *memGrant) int {
		switch {
		case a.expires.IsZero() == b.expires.IsZero():
			return a.expires.Compare(b.expires)
		case a.expires.IsZero():
			return 1 // no expiry last
		}
		return -1
	})
	for _, c := range live {
		if n == 0 {
			break
		}
		take := min(n, c.remaining)
		c.remaining -= take
		n -= take
		u.ledger = append(u.ledger, LedgerEntry{At: now, Kind: LedgerSpend, Tokens: -take, Key: c.key, Reason: SpendReason})
	}
}

// Grant implements Store.
func (s *MemoryStore) Grant(ctx context.Context, c Credit, now time.Time) (bool, error) {
	sh := s.shard(c.UserID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.record(c.UserID)
	for _, g := range u.grants {
		if g.key == c.Key {
			return false, nil
		}
	}
	u.grants = append(u.grants, &memGrant{key: c.Key, remaining: c.Tokens, expires: c.ExpiresAt})
	if c.Tokens == 0 {
		return true, nil // the key is taken; nothing is granted
	}
	if c.TopUp != "" {
		s.conversionsMu.Lock()
		s.topUps = append(s.topUps, TopUpRecord{UserID: c.UserID, PriceID: c.TopUp, Tokens: c.Tokens, At: now})
		s.conversionsMu.Unlock()
	}
	u.ledger = append(u.ledger, LedgerEntry{At: now, Kind: LedgerGrant, Tokens: c.Tokens, Key: c.Key, Reason: c.Reason,
		ExpiresAt: c.ExpiresAt})
	return true, nil
}

// TopUps implements Store.
func (s *MemoryStore) TopUps(ctx context.Context, from, to time.Time) ([]TopUpRecord, error) {
	s.conversionsMu.Lock()
	defer s.conversionsMu.Unlock()
	return within(s.topUps, func(t TopUpRecord) time.Time { return t.At }, from, to), nil
}

// Revoke implements Store.
func (s *MemoryStore) Revoke(ctx context.Context, userID, key, reason string, now time.Time) (int64, error) {
	sh := s.shard(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.users[userID]
	if u == nil {
		return 0, ErrGrantNotFound
	}
	for _, c := range u.grants {
		if c.key != key {
			continue
		}
		if !c.live(now) {
			return 0, nil
		}
		n := c.remaining
		c.remaining = 0
		u.ledger = append(u.ledger, LedgerEntry{At: now, Kind: LedgerRevoke, Tokens: -n, Key: key, Reason: reason})
		return n, nil
	}
	return 0, ErrGrantNotFound
}

// Adjust implements Store.
func (s *MemoryStore) Adjust(ctx context.Context, userID string, w Window, tokens int64, key, reason string, now time.Time) (bool, error) {
	sh := s.shard(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.user(userID, now)
	if _, seen := u.adjusted[key]; seen {
		return false, nil
	}
	if u.adjusted == nil {
		u.adjusted = map[string]struct{}{}
	}
	u.adjusted[key] = struct{}{}
	start, _ := w.Bounds(u.anchor, now)
	k := start.UnixMicro()
	before := u.used[k]
	u.used[k] = max(0, addSat(before, max(tokens, 0))+min(tokens, 0))
	u.ledger = append(u.ledger, LedgerEntry{At: now, Kind: LedgerAdjust, Tokens: u.used[k] - before, Key: key, Reason: reason})
	return true, nil
}

// Ledger implements Store.
func (s *MemoryStore) Ledger(ctx context.Context, userID string, from, to, now time.Time) ([]LedgerEntry, error) {
	sh := s.shard(userID)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	u := sh.users[userID]
	if u == nil {
		return nil, nil
	}
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	var out []LedgerEntry
	for _, e := range u.ledger {
		if in(e.At) {
			out = append(out, e)
		}
	}
	written := len(out)
	for _, c := range u.grants {
		if c.remaining > 0 && !c.expires.IsZero() && !c.expires.After(now) && in(c.expires) {
			out = append(out, LedgerEntry{At: c.expires, Kind: LedgerExpire, Tokens: -c.remaining, Key: c.key, Reason: ExpireReason})
		}
	}
	// As Postgres orders them: by time, the entries written in their
	// order, then the expiries by key.
	slices.SortFunc(out[written:], func(a, b LedgerEntry) int { return strings.Compare(a.Key, b.Key) })
	slices.SortStableFunc(out, func(a, b LedgerEntry) int { return a.At.Compare(b.At) })
	return out, nil
}
