package freemium

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SubscriptionChecker reports users' subscriptions with the billing provider.
// Implementations must be safe for simultaneous use.
type SubscriptionChecker interface {
	// Subscriptions returns all of the user's subscriptions, whatever their
	// status: the Gate decides the user's plan from all of them (see
	// Config.Plans). None means the user has no subscription; an error
	// means the answer is unknown.
	Subscriptions(ctx context.Context, userID string) ([]Subscription, error)
}

// Subscription is one subscription of a user as the billing provider sees
// it.
type Subscription struct {
	ID         string // the provider's subscription ID
	CustomerID string // the provider's customer ID
	// PriceIDs are the prices of the subscription's items. Any of them
	// that a plan lists places a subscriber on that plan.
	PriceIDs []string
	Status   SubscriptionStatus // with Stripe's names

	// CurrentPeriodStart and CurrentPeriodEnd bound the billing period, the
	// window of BillingCycle plans.
	CurrentPeriodStart, CurrentPeriodEnd time.Time
	CancelAtPeriodEnd                    bool // the subscription ends with the period
}

// SubscriptionStatus is a subscription's status, with Stripe's names.
type SubscriptionStatus string

// The subscription statuses. Active and Trialing place a user on a paid plan.
const (
	StatusActive            SubscriptionStatus = "active"
	StatusTrialing          SubscriptionStatus = "trialing"
	StatusPastDue           SubscriptionStatus = "past_due"
	StatusCanceled          SubscriptionStatus = "canceled"
	StatusUnpaid            SubscriptionStatus = "unpaid"
	StatusIncomplete        SubscriptionStatus = "incomplete"
	StatusIncompleteExpired SubscriptionStatus = "incomplete_expired"
	StatusPaused            SubscriptionStatus = "paused"
)

// known reports whether s is one of the statuses above.
func (s SubscriptionStatus) known() bool {
	switch s {
	case StatusActive, StatusTrialing, StatusPastDue, StatusCanceled, StatusUnpaid,
		StatusIncomplete, StatusIncompleteExpired, StatusPaused:
		return true
	}
	return false
}

// Subscribed reports whether the status places a user on a paid plan.
func (s SubscriptionStatus) Subscribed() bool {
	return s == StatusActive || s == StatusTrialing
}

// ErrSubscriptionUnavailable is returned, wrapping the cause, when a user's
// subscription cannot be known: Subscriptions failed and the mirror is past
// Config.SubscriptionGrace, under FallbackError.
var ErrSubscriptionUnavailable = errors.New("freemium: subscription unavailable")

// A CustomerChecker is a SubscriptionChecker that can look up the
// subscriptions of a customer the Gate knows: one linked to the user with
// LinkCustomer, by a checkout or by a webhook. The Gate finds the
// capability by type assertion; stripesub.Checker has it.
type CustomerChecker interface {
	// CustomerSubscriptions is Subscriptions for userID, whose customer is
	// customerID.
	CustomerSubscriptions(ctx context.Context, userID, customerID string) ([]Subscription, error)
}

// statusRank orders statuses by how much access they give.
func statusRank(s SubscriptionStatus) int {
	switch {
	case s.Subscribed():
		return 3
	case s == StatusPastDue:
		return 2
	case s == StatusUnpaid || s == StatusPaused || s == StatusIncomplete:
		return 1
	}
	return 0
}

// pullMargin dates a fetched snapshot before the fetch began, to the second
// as Stripe dates events, so that an event from the same second or two (a
// cancellation while the fetch ran, or on a clock a little ahead) is not
// lost to the fetch: it supersedes the fetched snapshot when delivered.
const pullMargin = 2 * time.Second

// blockedRefreshAge: a check about to block refreshes a mirror older than
// this, whatever Config.SubscriptionMaxAge, so that a user who just paid is
// let through.
const blockedRefreshAge = time.Minute

// load reads the user's state on the plan their mirrored subscription places
// them on at now, refreshing the mirror first when it is older than
// Config.SubscriptionMaxAge. It returns the plan and its window.
func (g *Gate) load(ctx context.Context, userID string, now time.Time) (*Plan, Window, State, error) {
	plan, w, st, err := g.loadOn(ctx, userID, now, false)
	if err != nil || g.cfg.Subscriptions == nil {
		return plan, w, st, err
	}
	if synced(st.Account.Subscriptions, now, g.cfg.SubscriptionMaxAge) {
		g.remember(userID, st)
		return plan, w, st, nil
	}
	rerr := g.refresh(ctx, userID, g.cfg.SubscriptionMaxAge)
	switch {
	case rerr == nil:
		plan, w, st, err = g.loadOn(ctx, userID, now, false)
		if err == nil && synced(st.Account.Subscriptions, now, g.cfg.SubscriptionMaxAge) {
			g.remember(userID, st)
		}
		return plan, w, st, err
	case ctx.Err() != nil:
		return nil, Window{}, State{}, rerr
	case synced(st.Account.Subscriptions, now, g.cfg.SubscriptionMaxAge+g.cfg.SubscriptionGrace):
		// The grace runs from when the mirror went stale.
		g.cfg.Logger.WarnContext(ctx, "freemium: subscription refresh failed; serving the last known state",
			"operation", "refresh", g.UserAttr(userID), "synced_at", st.Account.Subscriptions.SyncedAt, "err", rerr)
		st.refreshFailed = true
		return plan, w, st, nil
	case g.cfg.SubscriptionFallback == FallbackFree:
		g.cfg.Logger.WarnContext(ctx, "freemium: subscription unknown; deciding on the free plan",
			"operation", "refresh", g.UserAttr(userID), "err", rerr)
		plan, w, st, err = g.loadOn(ctx, userID, now, true)
		st.refreshFailed, st.fallback = true, true
		return plan, w, st, err
	}
	return nil, Window{}, State{}, rerr
}

// remember keeps the fresh mirror st was read with, for Reserve's
// optimistic plan (see mirrorCache).
func (g *Gate) remember(userID string, st State) {
	if st.Account.Subscriptions.Version != 0 {
		g.mirrors.put(userID, st.Account.Subscriptions)
	}
}

// remembered is the user's plan and window at now on the mirror the Gate
// remembers, and that mirror's Version, when the mirror is fresh enough to
// decide on without a refresh (as load would); ok is false otherwise.
func (g *Gate) remembered(userID string, now time.Time) (plan *Plan, w Window, st State, version int64, ok bool) {
	m, ok := g.mirrors.get(userID)
	if !ok || !synced(m, now, g.cfg.SubscriptionMaxAge) {
		return nil, Window{}, State{}, 0, false
	}
	p := &placement{g: g, now: now}
	st.Account.Subscriptions = m
	p.window(st.Account)
	return p.plan, p.w, st, m.Version, true
}

// loadOn reads the user's state on the plan their mirror places them on, or
// on Free.
func (g *Gate) loadOn(ctx context.Context, userID string, now time.Time, free bool) (*Plan, Window, State, error) {
	p := &placement{g: g, now: now, free: free}
	st, err := g.store.Load(ctx, userID, now, p.window)
	if err != nil {
		return nil, Window{}, State{}, fmt.Errorf("freemium: load: %w", err)
	}
	return p.plan, p.w, st, nil
}

// placement is the window function of loadOn, which keeps the plan and
// window it chose (one allocation for all of it).
type placement struct {
	g    *Gate
	now  time.Time
	free bool
	plan *Plan
	w    Window
}

func (p *placement) window(a Account) Window {
	p.plan = &p.g.cfg.Free
	var sub *Subscription
	if p.g.cfg.Subscriptions != nil && !p.free {
		if p.plan, sub = p.g.placed(a.Subscriptions.Subscriptions, p.now); p.plan == &p.g.cfg.Free && sub != nil {
			p.g.warnUnplaced(sub)
			sub = nil
		}
	}
	p.w = p.plan.Period.window(p.now, sub)
	if p.plan.Period == BillingCycle && sub != nil && sub.CurrentPeriodEnd.IsZero() {
		p.g.warnOnce("period\x00"+sub.ID, "freemium: subscription has no billing period; its BillingCycle plan counts calendar months",
			"subscription_id", sub.ID, "plan", p.plan.Name, "fix", "set CurrentPeriodStart and CurrentPeriodEnd in the SubscriptionChecker")
	}
	return p.w
}

// recheck refreshes the mirror behind a decision about to block, when it is
// older than blockedRefreshAge, and reports whether it did.
func (g *Gate) recheck(ctx context.Context, userID string, st State, now time.Time) bool {
	if g.cfg.Subscriptions == nil || st.refreshFailed || synced(st.Account.Subscriptions, now, blockedRefreshAge) {
		return false // a refresh that just failed is not tried again in one request
	}
	if err := g.refresh(ctx, userID, blockedRefreshAge); err != nil {
		g.cfg.Logger.WarnContext(ctx, "freemium: subscription refresh before blocking failed",
			"operation", "refresh", g.UserAttr(userID), "err", err)
		return false
	}
	return true
}

// synced reports whether m was synced from the provider less than maxAge
// before now.
func synced(m SubscriptionMirror, now time.Time, maxAge time.Duration) bool {
	return !m.SyncedAt.IsZero() && now.Sub(m.SyncedAt) < maxAge
}

// refresh mirrors the user's subscription from Config.Subscriptions, unless
// the Store's mirror is younger than maxAge by then. Concurrent refreshes of
// a user in this process share one call, which is bounded by
// Config.SubscriptionTimeout and outlives a caller that gives up.
func (g *Gate) refresh(ctx context.Context, userID string, maxAge time.Duration) error {
	_, err := g.shared(ctx, userID+"\x00"+maxAge.String(), func(ctx context.Context) (any, error) {
		ctx, start := g.begin(ctx, OpRefresh)
		err := g.pull(ctx, userID, maxAge)
		g.finish(ctx, OpRefresh, start, err)
		return nil, err
	})
	return err
}

// shared runs f once for all concurrent callers with the same key in this
// process, on a context bounded by Config.SubscriptionTimeout that
// outlives a caller who gives up: the call goes on for the others.
func (g *Gate) shared(ctx context.Context, key string, f func(context.Context) (any, error)) (any, error) {
	ch := g.flights.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.SubscriptionTimeout)
		defer cancel()
		return f(fctx)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		return r.Val, r.Err
	}
}

// pull mirrors the user's subscriptions from Config.Subscriptions, unless
// the Store's mirror is younger than maxAge.
func (g *Gate) pull(ctx context.Context, userID string, maxAge time.Duration) error {
	now := g.now()
	// Another check, here or in another instance, may have refreshed
	// the mirror since ours was read.
	st, err := g.store.Load(ctx, userID, now, lifetimeWindow)
	if err != nil {
		return fmt.Errorf("freemium: load: %w", err)
	}
	if synced(st.Account.Subscriptions, now, maxAge) {
		return nil
	}
	subs, err := g.lookup(ctx, userID, st.Account.CustomerID)
	if err != nil {
		return err
	}
	u := g.update(subs, now.Truncate(time.Second).Add(-pullMargin), now)
	u.Pulled = true
	_, converted, err := g.store.PutSubscriptions(ctx, userID, u, now)
	if err != nil {
		return fmt.Errorf("freemium: mirror subscription: %w", err)
	}
	if converted {
		g.Observe(ctx, Event{Kind: EventConversion, Plan: u.PaidPlan})
	}
	return nil
}

// lookup asks Config.Subscriptions for the user's subscriptions, by their
// customer when it is known and the checker can (CustomerChecker). Its
// error matches ErrSubscriptionUnavailable.
func (g *Gate) lookup(ctx context.Context, userID, customerID string) ([]Subscription, error) {
	var subs []Subscription
	var err error
	if cc, ok := g.cfg.Subscriptions.(CustomerChecker); ok && customerID != "" {
		subs, err = cc.CustomerSubscriptions(ctx, userID, customerID)
	} else {
		subs, err = g.cfg.Subscriptions.Subscriptions(ctx, userID)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSubscriptionUnavailable, err)
	}
	return subs, nil
}

func lifetimeWindow(Account) Window { return Window{Start: lifetimeStart, End: lifetimeEnd} }

// update is the SubscriptionUpdate that carries subs, as of asOf, received
// at now: each subscription with the paid plan it places its user on, and
// the paid plan they place the user on together.
func (g *Gate) update(subs []Subscription, asOf, now time.Time) SubscriptionUpdate {
	u := SubscriptionUpdate{Subscriptions: make([]MirroredSubscription, len(subs)), AsOf: asOf, SyncedAt: now}
	for i, s := range subs {
		if !s.Status.known() {
			g.warnOnce("status\x00"+s.ID, "freemium: subscription status is not one of Stripe's; it gives no access",
				"subscription_id", s.ID, "status", s.Status, "fix", "use the lower-case Stripe names (freemium.StatusActive, ...)")
		}
		u.Subscriptions[i] = MirroredSubscription{Subscription: s, AsOf: asOf}
		if p, _ := g.placed(u.Subscriptions[i:i+1], now); p != &g.cfg.Free { // no warning: an add-on is on no plan
			u.Subscriptions[i].PaidPlan = p.Name
		}
	}
	if p, _ := g.placed(u.Subscriptions, now); p != &g.cfg.Free {
		u.PaidPlan = p.Name
	}
	return u
}

// placed is the plan a user with subscriptions subs is on at now, and the
// subscription that places them on it. On Free, that is nil, or a
// subscription that gives access on a price no plan lists. A subscription gives
// access when its status is active or trialing, or past_due until
// Config.PastDueGrace after its period ends. Of those, the ones with an item
// whose price a plan lists decide, active and trialing ones first, then the
// best plan (see betterPlan), then the period that ends last; a subscription
// or item whose price no plan lists never displaces them. Without such a
// subscription, one that gives access puts the user on the plan without
// PriceIDs, if there is one. Everything else is Free.
func (g *Gate) placed(subs []MirroredSubscription, now time.Time) (*Plan, *Subscription) {
	var (
		best, unmapped *Subscription
		bestPlan       = -1
		bestRank       int
	)
	for i := range subs {
		s := &subs[i].Subscription
		rank := statusRank(s.Status)
		if rank < 2 || rank == 2 && !now.Before(s.CurrentPeriodEnd.Add(g.cfg.PastDueGrace)) {
			continue // no access: only active, trialing and past_due in grace give it
		}
		for _, price := range s.PriceIDs {
			p, ok := g.byPrice[price]
			if ok && (best == nil || rank > bestRank ||
				rank == bestRank && (g.betterPlan(p, bestPlan) || p == bestPlan && s.CurrentPeriodEnd.After(best.CurrentPeriodEnd))) {
				best, bestPlan, bestRank = s, p, rank
			}
		}
		if unmapped == nil || rank > statusRank(unmapped.Status) ||
			rank == statusRank(unmapped.Status) && s.CurrentPeriodEnd.After(unmapped.CurrentPeriodEnd) {
			unmapped = s
		}
	}
	switch {
	case best != nil:
		return &g.cfg.Plans[bestPlan], best
	case unmapped != nil && g.catchAll >= 0:
		return &g.cfg.Plans[g.catchAll], unmapped
	}
	return &g.cfg.Free, unmapped
}

// warnUnplaced logs the prices of sub, which gives access but leaves its
// user on Free: no plan lists them. Once per price, not per check.
func (g *Gate) warnUnplaced(sub *Subscription) {
	for _, price := range sub.PriceIDs {
		g.warnOnce("price\x00"+price, "freemium: subscription price matches no plan; its subscribers are on the free plan",
			"subscription_id", sub.ID, "price_id", price)
	}
}

// maxWarned bounds the keys warnOnce remembers; past it, it stays silent.
const maxWarned = 1 << 14

// warnOnce logs a warning of the checker's data the first time key is
// seen, not on every check.
func (g *Gate) warnOnce(key, msg string, args ...any) {
	if g.warnedCount.Load() >= maxWarned {
		return
	}
	if _, warned := g.warned.LoadOrStore(key, true); !warned {
		g.warnedCount.Add(1)
		g.cfg.Logger.Warn(msg, args...)
	}
}

// betterPlan reports whether Config.Plans[i] is a better plan than
// Config.Plans[j] (-1: none): a larger allowance per period, Unlimited the
// largest; of equal allowances, the one listed first.
func (g *Gate) betterPlan(i, j int) bool {
	if j < 0 {
		return true
	}
	li, lj := g.cfg.Plans[i].Limit, g.cfg.Plans[j].Limit
	switch {
	case li == lj:
		return i < j
	case li == Unlimited || lj == Unlimited:
		return li == Unlimited
	}
	return li > lj
}

// Refresh mirrors the user's subscription from Config.Subscriptions now, for
// the page a checkout returns to: the new plan applies to the next check.
func (g *Gate) Refresh(ctx context.Context, userID string) error {
	if err := validateUserID(userID); err != nil {
		return err
	}
	if g.cfg.Subscriptions == nil {
		return errors.New("freemium: Refresh: Config.Subscriptions is nil: there is nothing to refresh from")
	}
	return g.refresh(ctx, userID, 0)
}

// LinkCustomer links the billing provider's customer to the user, for hosts
// that create customers themselves: refreshes then look the customer's
// subscription up directly (CustomerChecker), and webhooks that name the
// customer reach the user. The next check refreshes the user's mirror. A
// customer linked to another user is ErrCustomerLinked.
func (g *Gate) LinkCustomer(ctx context.Context, userID, customerID string) error {
	if err := validateUserID(userID); err != nil {
		return err
	}
	if err := validateText(customerID); err != nil || customerID == "" {
		return fmt.Errorf("freemium: LinkCustomer: customer ID %q is not valid: give the provider's customer ID", customerID)
	}
	if err := g.store.LinkCustomer(ctx, userID, customerID, g.now()); err != nil {
		return fmt.Errorf("freemium: link customer: %w", err)
	}
	return nil
}

// ApplySubscription mirrors one subscription as a billing provider's
// webhook tells of it at asOf (the event's time), for webhook handlers such
// as stripesub's. The subscription is the user's whose customer it belongs
// to (Gate.LinkCustomer, checkouts), else the user namedUser (from the
// subscription's metadata), whose customer it then becomes. News older than
// the mirror's is ignored, so duplicate and out-of-order deliveries are
// harmless.
//
// Nothing is written, and the error says why, for a subscription whose
// customer is linked to another user than namedUser (ErrCustomerLinked:
// metadata can be edited, a link cannot be taken over by an event) and for
// one of no known user (ErrInvalidUserID: not one of the host's users yet;
// the checkout's link makes the next check refresh). Other errors are the
// Store's: the webhook should be retried.
func (g *Gate) ApplySubscription(ctx context.Context, sub Subscription, namedUser string, asOf time.Time) (err error) {
	ctx, start := g.begin(ctx, OpApplySubscription)
	defer func() { g.finish(ctx, OpApplySubscription, start, err) }()
	user, linked, err := g.owner(ctx, sub.CustomerID, namedUser, "subscription "+sub.ID)
	if err != nil {
		return err
	}
	now := g.now()
	if sub.CustomerID != "" && linked == "" {
		if err := g.store.LinkCustomer(ctx, user, sub.CustomerID, now); err != nil {
			return fmt.Errorf("freemium: apply subscription: %w", err) // ErrCustomerLinked: linked to another user meanwhile
		}
	}
	u := g.update([]Subscription{sub}, asOf.UTC(), now)
	_, converted, err := g.store.PutSubscriptions(ctx, user, u, now)
	if err != nil {
		return fmt.Errorf("freemium: apply subscription: %w", err)
	}
	if converted {
		g.Observe(ctx, Event{Kind: EventConversion, Plan: u.PaidPlan})
	}
	return nil
}

// CheckoutParams shapes the checkout page of Gate.CheckoutURL.
type CheckoutParams struct {
	// SuccessURL is where the provider sends the user after paying: the
	// page that calls Gate.CompleteCheckout. Stripe replaces
	// {CHECKOUT_SESSION_ID} in it with the session's ID. Required.
	SuccessURL string
	// CancelURL is where the user goes back to without paying. Default: none.
	CancelURL string
	// Email prefills the email of a user who is not a customer yet. Default "".
	Email string
	// AllowPromotionCodes lets the user enter a promotion code. Default false.
	AllowPromotionCodes bool
	// TrialDays starts the subscription with a free trial. Default 0: none.
	TrialDays int64
	// CustomerID is the user's customer with the provider. Default: the one
	// linked to the user in the Store, if any.
	CustomerID string
}

// A CheckoutCreator is a SubscriptionChecker that can also start the
// provider's checkout for a user and a price. The Gate finds the capability
// by type assertion; stripesub.Checker has it.
type CheckoutCreator interface {
	CheckoutURL(ctx context.Context, userID, priceID string, p CheckoutParams) (string, error)
}

// A CheckoutReader is a SubscriptionChecker that can read back a completed
// checkout. The Gate finds the capability by type assertion;
// stripesub.Checker has it.
type CheckoutReader interface {
	// CheckoutSession reads back a complete checkout that the checker made
	// (CheckoutURL or TopUpURL); one not complete, or made otherwise, is
	// an error.
	CheckoutSession(ctx context.Context, sessionID string) (CompletedCheckout, error)
}

// CompletedCheckout is a checkout as a CheckoutReader reads it back.
type CompletedCheckout struct {
	UserID     string // the user it was made for
	CustomerID string // the customer it made or used; "" for none
	// TopUpPrice is the top-up's price, for the checkout of a top-up
	// (TopUpURL); "" for a subscription's.
	TopUpPrice string
	// PaymentID is a top-up's payment (TopUpPayment.ID).
	PaymentID string
	// Paid is set when a top-up's payment has succeeded; an asynchronous
	// one (a bank debit) may succeed later.
	Paid bool
}

// ErrPaymentPending is returned by CompleteCheckout for a top-up whose
// payment has not succeeded yet: the tokens are granted when the provider
// reports it (stripesub.WebhookHandler).
var ErrPaymentPending = errors.New("freemium: the payment has not succeeded yet")

// CompleteCheckout makes a completed checkout count at once, for the page
// the checkout returns to (Stripe replaces {CHECKOUT_SESSION_ID} in
// CheckoutParams.SuccessURL with the session's ID): it reads the session
// back from the provider, checks that it was userID's, links its customer
// to the user, and then refreshes the user's mirror (a subscription) or
// grants the tokens (a paid top-up, once: see ApplyTopUp). So the upgrade
// or the tokens apply to the next request even when the webhook is late or
// not wired. A session of another user, or one not complete, is an error,
// and nothing is written; a top-up not paid yet is ErrPaymentPending.
// Config.Subscriptions must be a CheckoutReader.
func (g *Gate) CompleteCheckout(ctx context.Context, userID, sessionID string) error {
	if err := validateUserID(userID); err != nil {
		return err
	}
	if err := validateText(sessionID); err != nil || sessionID == "" {
		return fmt.Errorf("freemium: CompleteCheckout: session ID %q is not valid", sessionID)
	}
	reader, ok := g.cfg.Subscriptions.(CheckoutReader)
	if !ok {
		return fmt.Errorf("freemium: CompleteCheckout: Config.Subscriptions (%T) cannot read checkouts: use stripesub.New", g.cfg.Subscriptions)
	}
	c, err := reader.CheckoutSession(ctx, sessionID)
	if err != nil {
		return fmt.Errorf("freemium: checkout %s: %w", sessionID, err)
	}
	if c.UserID != userID {
		return fmt.Errorf("freemium: checkout %s is not %s's", sessionID, userID)
	}
	if c.TopUpPrice != "" {
		if !c.Paid {
			return fmt.Errorf("freemium: checkout %s: %w", sessionID, ErrPaymentPending)
		}
		return g.ApplyTopUp(ctx, TopUpPayment{ID: c.PaymentID, PriceID: c.TopUpPrice, UserID: userID, CustomerID: c.CustomerID})
	}
	if c.CustomerID != "" {
		if err := g.LinkCustomer(ctx, userID, c.CustomerID); err != nil {
			return err
		}
	}
	return g.Refresh(ctx, userID)
}

// owner is the user a provider's object (what: "subscription sub_1")
// is for: the user its customer is linked to, else the user it names,
// and the linked one ("" for none). A customer linked to another user
// than the one named is ErrCustomerLinked, and no user is
// ErrInvalidUserID: metadata can be edited, a link cannot be taken over.
func (g *Gate) owner(ctx context.Context, customerID, named, what string) (user, linked string, err error) {
	if customerID != "" {
		if linked, err = g.store.CustomerUser(ctx, customerID); err != nil {
			return "", "", fmt.Errorf("freemium: %s: %w", what, err)
		}
	}
	user = linked
	switch {
	case linked != "" && named != "" && named != linked:
		return "", "", fmt.Errorf("%w: %s names another user in its metadata", ErrCustomerLinked, what)
	case linked == "":
		user = named
	}
	if err := validateUserID(user); err != nil {
		return "", "", fmt.Errorf("freemium: %s: %w", what, err)
	}
	return user, linked, nil
}

// linkedCustomer sets p.CustomerID, when empty, to the customer linked to
// the user in the Store, if any.
func (g *Gate) linkedCustomer(ctx context.Context, userID string, p *CheckoutParams) error {
	if p.CustomerID != "" {
		return nil
	}
	st, err := g.store.Load(ctx, userID, g.now(), lifetimeWindow)
	p.CustomerID = st.Account.CustomerID
	return err
}

// CheckoutURL returns a link to the provider's checkout page that
// subscribes userID to priceID, for an upgrade button. Call it when the user
// asks to upgrade, not on every blocked check: each call creates a checkout
// session. The price must place a subscriber on one of Config.Plans, and
// Config.Subscriptions must be a CheckoutCreator.
func (g *Gate) CheckoutURL(ctx context.Context, userID, priceID string, p CheckoutParams) (string, error) {
	if err := validateUserID(userID); err != nil {
		return "", err
	}
	if _, ok := g.byPrice[priceID]; !ok && g.catchAll < 0 {
		return "", fmt.Errorf("freemium: CheckoutURL: price %q is in no plan's PriceIDs: a subscriber to it would stay on Free", priceID)
	}
	if p.SuccessURL == "" {
		return "", errors.New("freemium: CheckoutURL: CheckoutParams.SuccessURL is empty: give the page the user returns to after paying")
	}
	creator, ok := g.cfg.Subscriptions.(CheckoutCreator)
	if !ok {
		return "", fmt.Errorf("freemium: CheckoutURL: Config.Subscriptions (%T) cannot create checkouts: use stripesub.New", g.cfg.Subscriptions)
	}
	if err := g.linkedCustomer(ctx, userID, &p); err != nil {
		return "", fmt.Errorf("freemium: checkout for %s: %w", userID, err)
	}
	url, err := creator.CheckoutURL(ctx, userID, priceID, p)
	if err != nil {
		return "", fmt.Errorf("freemium: checkout for %s: %w", userID, err)
	}
	return url, nil
}
