package freemium_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/pgstore"
)

// clockedGates returns two Gates on one Postgres schema, each with a
// pgstore.Store of its own (two instances), A's clock at T0 and B's 90 s
// ahead, past the 1-minute TTL; and the clocks.
func clockedGates(t *testing.T) (a, b *freemium.Gate, clockA, clockB *freemiumtest.Clock) {
	t.Helper()
	storeA, schema := testenv.PostgresSchema(t)
	storeB, err := pgstore.New(testenv.Pool(t), &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	plan := freemium.Plan{Limit: 1000, Period: freemium.CalendarMonth}
	clockA, clockB = freemiumtest.NewClock(freemiumtest.T0), freemiumtest.NewClock(freemiumtest.T0.Add(90*time.Second))
	gate := func(s freemium.Store, c *freemiumtest.Clock) *freemium.Gate {
		g, err := freemium.New(freemium.Config{Store: s, Free: plan, ReservationTTL: time.Minute, Now: c.Now})
		require.NoError(t, err)
		return g
	}
	return gate(storeA, clockA), gate(storeB, clockB), clockA, clockB
}

func reserveOn(t *testing.T, g *freemium.Gate, tokens int64) *freemium.Reservation {
	t.Helper()
	r, err := g.Reserve(context.Background(), "u1", tokens)
	require.NoError(t, err)
	return r
}

func reservedOn(t *testing.T, g *freemium.Gate) int64 {
	t.Helper()
	u, err := g.Usage(context.Background(), "u1")
	require.NoError(t, err)
	return u.Reserved
}

// Issue 15, case 8: with B's clock ahead of A's by more than the TTL, B's
// Reserve (which recounts the holds) must not drop A's live hold, so A
// cannot admit 900 of 1,000 twice within a second.
func TestPostgresClocksApartNoDoubleAdmission(t *testing.T) {
	ctx := context.Background()
	a, b, clockA, _ := clockedGates(t)
	first := reserveOn(t, a, 900)
	require.True(t, first.OK())
	onB := reserveOn(t, b, 50)
	assert.True(t, onB.OK(), "50 fit beside A's 900")
	assert.Equal(t, int64(950), reservedOn(t, b), "B counts A's hold: the database's clock says it is live")
	clockA.Advance(500 * time.Millisecond)
	second := reserveOn(t, a, 900)
	assert.False(t, second.OK(), "A's second 900 within a second")
	require.NoError(t, first.Commit(ctx, 900))
	require.NoError(t, onB.Commit(ctx, 50))
	u, err := a.Usage(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(950), u.Used)
	assert.Equal(t, int64(0), u.Reserved)
}

// The clocks the other way round: B, ahead, places the hold, and A, behind,
// counts it (by the database's clock) and refuses what does not fit.
func TestPostgresClocksApartBehindCountsByTheDatabase(t *testing.T) {
	a, b, _, _ := clockedGates(t)
	require.True(t, reserveOn(t, b, 900).OK())
	assert.False(t, reserveOn(t, a, 900).OK(), "B's hold counts for A")
	assert.Equal(t, int64(900), reservedOn(t, a))
}

// Another instance's hold expires by the database's clock: a hold with a
// zero TTL (ExpiresAt = now) has expired for B by B's next statement,
// whatever B's clock says; a hold with a minute left is live for B even
// with B's clock two minutes on.
func TestPostgresOtherInstancesHoldsExpireByTheDatabase(t *testing.T) {
	ctx := context.Background()
	storeA, schema := testenv.PostgresSchema(t)
	storeB, err := pgstore.New(testenv.Pool(t), &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	t0 := freemiumtest.T0
	w := freemium.Window{Start: t0, End: t0.Add(time.Hour)}
	for _, h := range []freemium.Hold{
		{ID: "now", UserID: "u1", Window: w, Tokens: 10, Limit: 100, ExpiresAt: t0},
		{ID: "minute", UserID: "u1", Window: w, Tokens: 20, Limit: 100, ExpiresAt: t0.Add(time.Minute)},
	} {
		r, err := storeA.Reserve(ctx, h, t0)
		require.NoError(t, err)
		require.True(t, r.Admitted)
	}
	window := func(freemium.Account) freemium.Window { return w }
	later := t0.Add(2 * time.Minute)
	st, err := storeB.Load(ctx, "u1", later, window)
	require.NoError(t, err)
	assert.Equal(t, int64(20), st.Reserved, "B: the minute hold is live by the database's clock")
	st, err = storeA.Load(ctx, "u1", later, window)
	require.NoError(t, err)
	assert.Equal(t, int64(0), st.Reserved, "A: both of its holds expired by its own clock")
	r, err := storeB.Reserve(ctx, freemium.Hold{ID: "b", UserID: "u1", Window: w, Tokens: 80, Limit: 100,
		ExpiresAt: later.Add(time.Minute)}, later)
	require.NoError(t, err)
	assert.True(t, r.Admitted, "80 fit beside the live 20")
	assert.Equal(t, int64(20), r.State.Reserved)
}
