package freemium

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
)

// GrantOptions shapes a grant of Gate.Grant.
type GrantOptions struct {
	// Key makes the grant idempotent: of any number of grants to one user
	// with the same non-empty Key, even racing ones, exactly one counts.
	// It also names the grant for RevokeGrant and in the Ledger. Keys
	// starting with "topup:" are the top-ups' (ApplyTopUp). Default "": a
	// new grant each call, with a key the Gate makes.
	Key string
	// ExpiresAt is when what is left of the grant stops counting. Default
	// zero: the grant lasts until it is spent.
	ExpiresAt time.Time
	// Reason says why the tokens were given, for the Ledger ("launch bonus",
	// "refund for a failed report"). Default "".
	Reason string
}

// Credit is for Store implementers: a grant of tokens to a user, which
// Store.Grant adds.
type Credit struct {
	UserID    string
	Key       string    // unique per user: a second grant with it adds nothing
	Tokens    int64     // positive; or 0, which takes the key and grants nothing, with no ledger entry
	ExpiresAt time.Time // zero: until spent
	Reason    string
	TopUp     string // the top-up's price, for a grant bought (Store.TopUps lists them); "" otherwise
}

// TopUpRecord is for Store implementers: a top-up bought, as Store.TopUps
// lists it for Gate.Funnel.
type TopUpRecord struct {
	UserID  string
	PriceID string
	Tokens  int64
	At      time.Time // when it was granted
}

// LedgerKind says what a LedgerEntry records.
type LedgerKind string

// The kinds of ledger entries.
const (
	LedgerGrant  LedgerKind = "grant"  // tokens granted (Tokens > 0)
	LedgerSpend  LedgerKind = "spend"  // tokens of a grant spent on usage past the allowance (Tokens < 0)
	LedgerExpire LedgerKind = "expire" // what was left of a grant at its expiry (Tokens < 0)
	LedgerRevoke LedgerKind = "revoke" // what was left of a grant, taken back (Tokens < 0)
	LedgerAdjust LedgerKind = "adjust" // a correction of the period's usage (Tokens: the change made)
)

// LedgerEntry is one change to a user's credits, or one adjustment of
// their usage, as Gate.Ledger returns it. The Tokens of the grant, spend,
// expire and revoke entries sum to the credits the user holds
// (Usage.Credits); those of adjust entries are changes to usage
// (Usage.Used), not to credits.
type LedgerEntry struct {
	At     time.Time  `json:"at"`
	Kind   LedgerKind `json:"kind"`
	Tokens int64      `json:"tokens"` // signed
	// Key names the grant the entry is about, or for an adjust entry the
	// adjustment's key.
	Key    string `json:"key"`
	Reason string `json:"reason,omitempty"`
	// ExpiresAt is the grant's expiry, on grant entries; zero for none.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// The reasons of the spend and expire entries, for Store implementers.
const (
	SpendReason  = "usage past the plan's allowance"
	ExpireReason = "expired"
)

// ErrGrantNotFound is returned by RevokeGrant for a key the user has no
// grant with.
var ErrGrantNotFound = errors.New("freemium: grant not found")

// topUpKeyPrefix starts the keys of top-ups' grants (topUpKey), which
// Grant refuses.
const topUpKeyPrefix = "topup:"

// Grant gives userID tokens to spend once the plan's allowance for the
// period is used up, on any plan with a hard limit, Free included (a grant
// lets a Free user past the free report). Grants are spent by Commit and
// Record, earliest expiry first, each spend an entry in the Ledger; what
// is left of a grant at its ExpiresAt stops counting. Reserve admits a
// request when the allowance left plus the credits cover it. Unlimited
// and soft-limited plans never spend grants; the credits wait for a plan
// that does.
//
// A reservation admitted on credits is honored, as one admitted on a plan
// is when the subscription ends before its Commit: when the grant expired
// or was revoked meanwhile, its Commit records the tokens as usage and
// spends what is left. So a grant is spent within Config.ReservationTTL
// of its expiry or revocation at most by the holds placed before it.
//
// With a non-empty o.Key the grant is made once, whatever the retries and
// races. Bad input (tokens not in [1, MaxTokens], an expiry not after now,
// an invalid key or reason) is an error, and nothing is written.
func (g *Gate) Grant(ctx context.Context, userID string, tokens int64, o GrantOptions) error {
	if strings.HasPrefix(o.Key, topUpKeyPrefix) {
		return fmt.Errorf("%w: %q starts with %q, which top-ups' keys do: choose another", ErrInvalidIdempotencyKey, o.Key, topUpKeyPrefix)
	}
	c, err := g.credit(userID, tokens, o)
	if err != nil {
		return err
	}
	_, err = g.grant(ctx, c)
	return err
}

// credit validates a grant and makes it a Credit.
func (g *Gate) credit(userID string, tokens int64, o GrantOptions) (Credit, error) {
	if err := validateUserID(userID); err != nil {
		return Credit{}, err
	}
	if tokens <= 0 || tokens > MaxTokens {
		return Credit{}, fmt.Errorf("%w: a grant of %d is not in [1, %d]", ErrInvalidTokens, tokens, MaxTokens)
	}
	if err := validateText(o.Key); err != nil {
		return Credit{}, fmt.Errorf("%w: %v", ErrInvalidIdempotencyKey, err)
	}
	if err := validateText(o.Reason); err != nil {
		return Credit{}, fmt.Errorf("freemium: grant reason: %v", err)
	}
	now := g.now()
	if !o.ExpiresAt.IsZero() && !o.ExpiresAt.After(now) {
		return Credit{}, fmt.Errorf("freemium: GrantOptions.ExpiresAt %s is not after now (%s): give a later time, or zero for none",
			o.ExpiresAt.UTC().Format(time.RFC3339), now.Format(time.RFC3339))
	}
	if o.Key == "" {
		o.Key = fmt.Sprintf("grant_%014x%s", now.UnixMicro(), rand.Text()[:16])
	}
	var exp time.Time
	if !o.ExpiresAt.IsZero() {
		exp = o.ExpiresAt.UTC().Truncate(time.Microsecond)
	}
	return Credit{UserID: userID, Key: o.Key, Tokens: tokens, ExpiresAt: exp, Reason: o.Reason}, nil
}

// grant adds c, and reports whether it was new.
func (g *Gate) grant(ctx context.Context, c Credit) (bool, error) {
	added, err := g.store.Grant(ctx, c, g.now())
	if err != nil {
		return false, fmt.Errorf("freemium: grant: %w", err)
	}
	return added, nil
}

// RevokeGrant takes back what is left of the user's grant with key: the
// tokens not yet spent, unless it expired. It returns the tokens taken
// back, 0 for a grant spent, expired or revoked already, and writes a
// revoke entry in the Ledger when they are more. Reservations admitted on
// the grant before are honored (see Grant). A key the user has no grant
// with is ErrGrantNotFound.
func (g *Gate) RevokeGrant(ctx context.Context, userID, key, reason string) (int64, error) {
	if err := validateUserID(userID); err != nil {
		return 0, err
	}
	if err := validateText(key); err != nil || key == "" {
		return 0, ErrGrantNotFound
	}
	if err := validateText(reason); err != nil {
		return 0, fmt.Errorf("freemium: revoke reason: %v", err)
	}
	n, err := g.store.Revoke(ctx, userID, key, reason, g.now())
	if err != nil && !errors.Is(err, ErrGrantNotFound) {
		err = fmt.Errorf("freemium: revoke grant: %w", err)
	}
	return n, err
}

// Adjust corrects the user's usage in the current period by tokens: down
// (negative) to give back the tokens of a report that failed, never below
// zero; up to charge work that went unrecorded. It changes usage, not
// credits: to give back tokens a grant paid for, Grant them. The
// adjustment is made once per user and key, whatever the retries and
// races, and is an entry in the Ledger with its reason and the change
// made. key is required; tokens must be non-zero, at most MaxTokens
// either way.
func (g *Gate) Adjust(ctx context.Context, userID string, tokens int64, key, reason string) error {
	if err := validateUserID(userID); err != nil {
		return err
	}
	if tokens == 0 || tokens > MaxTokens || tokens < -MaxTokens {
		return fmt.Errorf("%w: an adjustment of %d is not in [-%d, %d] less 0", ErrInvalidTokens, tokens, MaxTokens, MaxTokens)
	}
	if err := validateText(key); err != nil || key == "" {
		if err == nil {
			err = errors.New("empty: an adjustment needs a key, so that a retry does not adjust twice")
		}
		return fmt.Errorf("%w: %v", ErrInvalidIdempotencyKey, err)
	}
	if err := validateText(reason); err != nil {
		return fmt.Errorf("freemium: adjust reason: %v", err)
	}
	now := g.now()
	_, w, _, err := g.loadOn(ctx, userID, now, false)
	if err != nil {
		return err
	}
	if _, err := g.store.Adjust(ctx, userID, w, tokens, key, reason, now); err != nil {
		return fmt.Errorf("freemium: adjust: %w", err)
	}
	return nil
}

// Ledger returns the user's ledger entries with At in [from, to), oldest
// first: every grant, spend from a grant, expiry, revocation and
// adjustment, with its reason, so that support can say where a user's
// tokens went. An expiry is an entry at the grant's ExpiresAt, once that
// has passed.
func (g *Gate) Ledger(ctx context.Context, userID string, from, to time.Time) ([]LedgerEntry, error) {
	if err := validateUserID(userID); err != nil {
		return nil, err
	}
	out, err := g.store.Ledger(ctx, userID, from.UTC(), to.UTC(), g.now())
	if err != nil {
		return nil, fmt.Errorf("freemium: ledger: %w", err)
	}
	return out, nil
}

// SpendFromGrants is for Store implementers: how many tokens a write of
// tokens to a window with usage before and allowance limit takes from
// the user's grants (as many as are live, if fewer): the part past
// max(limit, before). A first-report write and an Unlimited limit take
// none.
func SpendFromGrants(limit, before, tokens int64, first bool) int64 {
	if first || limit == Unlimited || tokens <= 0 {
		return 0
	}
	return max(0, addSat(before, tokens)-max(limit, before))
}
