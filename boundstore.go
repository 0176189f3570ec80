package freemium

import (
	"context"
	"time"
)

// boundStore is the Store as the Gate calls it: each call has a deadline
// of Config.StoreTimeout unless its context has a sooner one, and is an
// OpStore operation for Config.Observer. A MemoryStore is not wrapped:
// its calls wait for nothing.
type boundStore struct {
	Store
	timeout time.Duration
	obs     Observer // nil for none
}

// storeFor is the Store the Gate of cfg calls.
func storeFor(cfg Config) Store {
	if _, ok := cfg.Store.(*MemoryStore); ok {
		return cfg.Store
	}
	return &boundStore{Store: cfg.Store, timeout: cfg.StoreTimeout, obs: cfg.Observer}
}

// call is one Store call under way.
type call struct {
	ctx    context.Context
	cancel context.CancelFunc // nil when ctx had a sooner deadline
	obs    Observer
	op     Op
	start  time.Time
}

// begin starts a call of method op: it bounds ctx and tells the Observer.
func (b *boundStore) begin(ctx context.Context, op Op) call {
	c := call{ctx: ctx, obs: b.obs, op: op}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > b.timeout {
		c.ctx, c.cancel = context.WithTimeout(ctx, b.timeout)
	}
	if c.obs != nil {
		c.ctx, c.start = c.obs.Start(c.ctx, op), time.Now()
	}
	return c
}

// end ends the call with its error, and returns the error.
func (c call) end(err error) error {
	if c.obs != nil {
		c.obs.End(c.ctx, c.op, OpResult{Err: err, Duration: time.Since(c.start)})
	}
	if c.cancel != nil {
		c.cancel()
	}
	return err
}

func (b *boundStore) Load(ctx context.Context, userID string, now time.Time, window func(Account) Window) (State, error) {
	c := b.begin(ctx, OpStore+"Load")
	st, err := b.Store.Load(c.ctx, userID, now, window)
	return st, c.end(err)
}

func (b *boundStore) Reserve(ctx context.Context, h Hold, now time.Time) (ReserveResult, error) {
	c := b.begin(ctx, OpStore+"Reserve")
	r, err := b.Store.Reserve(c.ctx, h, now)
	return r, c.end(err)
}

func (b *boundStore) Commit(ctx context.Context, h HoldRef, tokens int64, now time.Time) error {
	c := b.begin(ctx, OpStore+"Commit")
	return c.end(b.Store.Commit(c.ctx, h, tokens, now))
}

func (b *boundStore) Cancel(ctx context.Context, h HoldRef, now time.Time) error {
	c := b.begin(ctx, OpStore+"Cancel")
	return c.end(b.Store.Cancel(c.ctx, h, now))
}

func (b *boundStore) Record(ctx context.Context, userID string, w Window, limit, tokens int64, key string, now time.Time) error {
	c := b.begin(ctx, OpStore+"Record")
	return c.end(b.Store.Record(c.ctx, userID, w, limit, tokens, key, now))
}

func (b *boundStore) Grant(ctx context.Context, cr Credit, now time.Time) (bool, error) {
	c := b.begin(ctx, OpStore+"Grant")
	added, err := b.Store.Grant(c.ctx, cr, now)
	return added, c.end(err)
}

func (b *boundStore) Revoke(ctx context.Context, userID, key, reason string, now time.Time) (int64, error) {
	c := b.begin(ctx, OpStore+"Revoke")
	n, err := b.Store.Revoke(c.ctx, userID, key, reason, now)
	return n, c.end(err)
}

func (b *boundStore) Adjust(ctx context.Context, userID string, w Window, tokens int64, key, reason string, now time.Time) (bool, error) {
	c := b.begin(ctx, OpStore+"Adjust")
	done, err := b.Store.Adjust(c.ctx, userID, w, tokens, key, reason, now)
	return done, c.end(err)
}

func (b *boundStore) TopUps(ctx context.Context, from, to time.Time) ([]TopUpRecord, error) {
	c := b.begin(ctx, OpStore+"TopUps")
	out, err := b.Store.TopUps(c.ctx, from, to)
	return out, c.end(err)
}

func (b *boundStore) Ledger(ctx context.Context, userID string, from, to, now time.Time) ([]LedgerEntry, error) {
	c := b.begin(ctx, OpStore+"Ledger")
	out, err := b.Store.Ledger(c.ctx, userID, from, to, now)
	return out, c.end(err)
}

func (b *boundStore) MarkFirstReportUsed(ctx context.Context, userID string, now time.Time) error {
	c := b.begin(ctx, OpStore+"MarkFirstReportUsed")
	return c.end(b.Store.MarkFirstReportUsed(c.ctx, userID, now))
}

func (b *boundStore) PutSubscriptions(ctx context.Context, userID string, u SubscriptionUpdate, now time.Time) (bool, bool, error) {
	c := b.begin(ctx, OpStore+"PutSubscriptions")
	changed, converted, err := b.Store.PutSubscriptions(c.ctx, userID, u, now)
	return changed, converted, c.end(err)
}

func (b *boundStore) LinkCustomer(ctx context.Context, userID, customerID string, now time.Time) error {
	c := b.begin(ctx, OpStore+"LinkCustomer")
	return c.end(b.Store.LinkCustomer(c.ctx, userID, customerID, now))
}

func (b *boundStore) CustomerUser(ctx context.Context, customerID string) (string, error) {
	c := b.begin(ctx, OpStore+"CustomerUser")
	u, err := b.Store.CustomerUser(c.ctx, customerID)
	return u, c.end(err)
}

func (b *boundStore) Conversions(ctx context.Context, from, to time.Time) ([]Conversion, error) {
	c := b.begin(ctx, OpStore+"Conversions")
	cs, err := b.Store.Conversions(c.ctx, from, to)
	return cs, c.end(err)
}

func (b *boundStore) Enqueue(ctx context.Context, n Notification, windowStart time.Time, deliver bool, now time.Time) (bool, error) {
	c := b.begin(ctx, OpStore+"Enqueue")
	added, err := b.Store.Enqueue(c.ctx, n, windowStart, deliver, now)
	return added, c.end(err)
}

// ClaimNotifications is bounded but not observed: Start's loop polls it
// every Delivery.PollInterval (see dispatchOnce).
func (b *boundStore) ClaimNotifications(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Outbound, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.ClaimNotifications(ctx, now, limit, lease)
}

func (b *boundStore) FinishNotification(ctx context.Context, id string, o Outcome, now time.Time) error {
	c := b.begin(ctx, OpStore+"FinishNotification")
	return c.end(b.Store.FinishNotification(c.ctx, id, o, now))
}

func (b *boundStore) Notifications(ctx context.Context, from, to time.Time) ([]NotificationRecord, error) {
	c := b.begin(ctx, OpStore+"Notifications")
	out, err := b.Store.Notifications(c.ctx, from, to)
	return out, c.end(err)
}
