package freemium

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"
)

// A Reservation holds tokens for a user while metered work runs. Reserve
// returns one; when OK, end it with Commit (the work happened) or Cancel (it
// did not). A hold that is neither stops counting after
// Config.ReservationTTL. A Reservation is safe for simultaneous use.
type Reservation struct {
	g        *Gate
	hold     HoldRef // ID "" when not OK
	decision Decision
}

// Reserve decides like Check and, when allowed, holds estimatedTokens for the
// user in the same atomic step, so that concurrent Reserves never admit more
// than the limit, and of any number of concurrent first requests exactly one
// gets the free first report. It returns a Reservation whether or not it is
// OK; the error is for invalid input or a failed backend.
func (g *Gate) Reserve(ctx context.Context, userID string, estimatedTokens int64) (*Reservation, error) {
	ctx, start := g.begin(ctx, OpReserve)
	r, err := g.reserve(ctx, userID, estimatedTokens)
	if g.cfg.Observer != nil {
		var d Decision
		if r != nil {
			d = r.decision
		}
		g.finishDecided(ctx, OpReserve, start, err, d)
	}
	return r, err
}

func (g *Gate) reserve(ctx context.Context, userID string, estimatedTokens int64) (*Reservation, error) {
	if err := validateRequest(userID, estimatedTokens); err != nil {
		return nil, err
	}
	now := g.now()
	plan, h, st, res, err := g.place(ctx, userID, estimatedTokens, now)
	if err != nil {
		return nil, err
	}
	if !res.Admitted && g.recheck(ctx, userID, st, now) {
		// A user who just paid is let through.
		var w Window
		if plan, w, _, err = g.loadOn(ctx, userID, now, false); err != nil {
			return nil, err
		}
		h = g.hold(plan, w, userID, estimatedTokens, now)
		h.ID = reservationID(now)
		if res, err = g.store.Reserve(ctx, h, now); err != nil {
			return nil, fmt.Errorf("freemium: reserve: %w", err)
		}
	}
	r := &Reservation{g: g, decision: g.decide(plan, res.State, estimatedTokens, res.Admitted, res.FirstReport)}
	g.notice(ctx, userID, plan, res.State, r.decision)
	if res.Admitted {
		r.hold = h.Ref(res)
	}
	return r, nil
}

// place decides the user's plan and places the hold of tokens on it. With
// a subscription checker, the plan comes from the mirror the Gate last
// read, when that is fresh, and the Store places the hold only while its
// mirror is still that one (Hold.Mirror): one round trip instead of two.
// When the mirror moved, it reads the mirror (refreshing it if need be)
// and places the hold on what it says, as without a remembered mirror.
func (g *Gate) place(ctx context.Context, userID string, tokens int64, now time.Time) (*Plan, Hold, State, ReserveResult, error) {
	if g.cfg.Subscriptions != nil {
		if plan, w, st, version, ok := g.remembered(userID, now); ok {
			h := g.hold(plan, w, userID, tokens, now)
			h.ID, h.Mirror = reservationID(now), version
			res, err := g.store.Reserve(ctx, h, now)
			if err != nil {
				return nil, Hold{}, State{}, ReserveResult{}, fmt.Errorf("freemium: reserve: %w", err)
			}
			if !res.MirrorMoved {
				return plan, h, st, res, nil
			}
			g.mirrors.forget(userID)
		}
	}
	plan, w, st, err := g.terms(ctx, userID, now)
	if err != nil {
		return nil, Hold{}, State{}, ReserveResult{}, err
	}
	h := g.hold(plan, w, userID, tokens, now)
	h.ID = reservationID(now)
	res, err := g.store.Reserve(ctx, h, now)
	if err != nil {
		return nil, Hold{}, State{}, ReserveResult{}, fmt.Errorf("freemium: reserve: %w", err)
	}
	return plan, h, st, res, nil
}

// reservationID is "rsv_", the time in hex and 80 random bits. IDs made
// later sort later, so a store's index on them grows at one end instead of
// touching a random page per insert.
func reservationID(now time.Time) string {
	return fmt.Sprintf("rsv_%014x%s", now.UnixMicro(), rand.Text()[:16])
}

// OK reports whether the reservation was allowed and holds tokens.
func (r *Reservation) OK() bool { return r.decision.Allowed }

// ID identifies the reservation, for CommitReservation and CancelReservation
// from another process, which take the user too. It is "" when the
// reservation is not OK.
func (r *Reservation) ID() string { return r.hold.ID }

// Decision is the decision Reserve made.
func (r *Reservation) Decision() Decision { return r.decision }

// Commit records actualTokens as used (more or fewer than estimated, zero
// included) in the period the reservation was made in, and ends the hold; a
// first-report reservation consumes the first report for good. Commit after
// the TTL still records; Commit after Cancel records too, since the work
// happened. A second Commit does nothing. Committing a reservation that is
// not OK returns its Decision's *BlockedError and records nothing.
func (r *Reservation) Commit(ctx context.Context, actualTokens int64) error {
	if !r.OK() {
		return r.decision.Err()
	}
	return r.g.commit(ctx, r.hold, actualTokens)
}

// Cancel ends the hold without recording usage, giving back its tokens and
// first-report claim. Cancel after Commit, a second Cancel, and Cancel of a
// reservation that is not OK do nothing.
func (r *Reservation) Cancel(ctx context.Context) error {
	if !r.OK() {
		return nil
	}
	return r.g.cancel(ctx, r.hold)
}

// CommitReservation is Reservation.Commit by the user and the reservation's
// ID, for work that finishes in another process, such as a background job.
// The ID alone is not enough, so that an ID that leaks (into a log or a
// job queue) cannot bill another user: a reservation the Store does not
// know for userID is ErrReservationNotFound, and nothing is recorded.
func (g *Gate) CommitReservation(ctx context.Context, userID, id string, actualTokens int64) error {
	if err := validateRequest(userID, actualTokens); err != nil {
		return err
	}
	if validateText(id) != nil || id == "" {
		return ErrReservationNotFound
	}
	return g.commit(ctx, HoldRef{ID: id, UserID: userID}, actualTokens)
}

// commit commits the hold h names.
func (g *Gate) commit(ctx context.Context, h HoldRef, tokens int64) error {
	if err := validateTokens(tokens); err != nil {
		return err
	}
	ctx, start := g.begin(ctx, OpCommit)
	err := g.store.Commit(ctx, h, tokens, g.now())
	if err != nil {
		err = fmt.Errorf("freemium: commit: %w", err) // not the ID: it is a bearer token
	}
	g.finish(ctx, OpCommit, start, err)
	return err
}

// CancelReservation is Reservation.Cancel by the user and the
// reservation's ID. A reservation the Store does not know for userID is
// ErrReservationNotFound, and nothing is given back.
func (g *Gate) CancelReservation(ctx context.Context, userID, id string) error {
	if err := validateUserID(userID); err != nil {
		return err
	}
	if validateText(id) != nil || id == "" {
		return ErrReservationNotFound
	}
	return g.cancel(ctx, HoldRef{ID: id, UserID: userID})
}

// cancel cancels the hold h names.
func (g *Gate) cancel(ctx context.Context, h HoldRef) error {
	ctx, start := g.begin(ctx, OpCancel)
	err := g.store.Cancel(ctx, h, g.now())
	if err != nil {
		err = fmt.Errorf("freemium: cancel: %w", err) // not the ID: it is a bearer token
	}
	g.finish(ctx, OpCancel, start, err)
	return err
}
