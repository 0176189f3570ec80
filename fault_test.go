package freemium_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/internal/testenv"
	"github.com/freemiumkit/freemium/pgstore"
)

// tcpProxy forwards loopback connections to a target, and can cut them all,
// refuse new ones (a database restarting), delay traffic (a latency spike)
// and stop forwarding bytes altogether (a database that stops answering).
type tcpProxy struct {
	ln     net.Listener
	target string
	down   atomic.Bool  // refuse new connections
	delay  atomic.Int64 // nanoseconds added before each chunk forwarded

	hangMu  sync.Mutex
	resumed chan struct{} // open while hung; nil or closed otherwise

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.resume()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// hang stops forwarding: every chunk read, on old connections and new,
// waits for resume. Connections stay open, as with a database that stops
// answering or a network that drops packets.
func (p *tcpProxy) hang() {
	p.hangMu.Lock()
	defer p.hangMu.Unlock()
	p.resumed = make(chan struct{})
}

// resume forwards again, the chunks held first.
func (p *tcpProxy) resume() {
	p.hangMu.Lock()
	defer p.hangMu.Unlock()
	if p.resumed != nil {
		close(p.resumed)
		p.resumed = nil
	}
}

// held waits while the proxy hangs.
func (p *tcpProxy) held() {
	p.hangMu.Lock()
	ch := p.resumed
	p.hangMu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if d := time.Duration(p.delay.Load()); n > 0 && d > 0 {
			time.Sleep(d) // the injected latency itself, not a wait for an event
		}
		p.held()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut closes every open connection, as a network failure or a database
// restart would. New connections are still accepted.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// proxiedStore is a pgstore.Store in a schema of its own, whose pool
// reaches Postgres through a proxy.
func proxiedStore(t *testing.T) (*pgstore.Store, *tcpProxy, string) {
	_, schema := testenv.PostgresSchema(t) // migrated, dropped at the end
	u, err := url.Parse(testenv.Pool(t).Config().ConnString())
	require.NoError(t, err)
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	cfg, err := pgxpool.ParseConfig(u.String())
	require.NoError(t, err)
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	return store, proxy, schema
}

// Connections cut under load: callers get errors, not hangs; the pool
// recovers without a restart; a Commit retried after an unknown outcome
// counts once, so nothing committed is lost or doubled.
func TestPostgresConnectionsCut(t *testing.T) {
	store, proxy, _ := proxiedStore(t)
	g, err := freemium.New(freemium.Config{Store: store, Free: freemium.Plan{Limit: freemium.Unlimited}})
	require.NoError(t, err)

	// Workers signal a commit on progress when its Reserve began after the
	// latest cut (epoch), so a signal proves the pool recovered.
	var epoch atomic.Int64
	progress := make(chan struct{}, 1)
	var committed atomic.Int64
	var failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				began := epoch.Load()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				r, err := g.Reserve(ctx, "u1", 10)
				if err != nil {
					failures.Add(1)
					cancel()
					continue
				}
				tokens := int64(w*1000 + i%100 + 1)
				// Retry the commit until it is known to have landed: it is
				// idempotent, so an attempt whose outcome was lost with the
				// connection cannot count twice.
				for {
					err := r.Commit(ctx, tokens)
					if err == nil {
						break
					}
					failures.Add(1)
					if ctx.Err() != nil {
						t.Errorf("commit did not land within 5s: %v", err)
						cancel()
						return
					}
				}
				committed.Add(tokens)
				cancel()
				if began == epoch.Load() {
					select {
					case progress <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	awaitProgress(t, progress)
	for range 10 {
		proxy.cut()
		epoch.Add(1)
		select { // a signal from before the cut proves nothing
		case <-progress:
		default:
		}
		awaitProgress(t, progress) // the pool recovered
	}
	close(stop)
	wg.Wait()

	u, err := g.Usage(context.Background(), "u1")
	require.NoError(t, err)
	assert.Equal(t, committed.Load(), u.Used, "usage is exactly what was committed")
	assert.Positive(t, failures.Load(), "the cuts were felt")
	t.Logf("committed %d tokens through 10 cuts, %d failed calls", u.Used, failures.Load())
}

// A database that stops answering (a proxy that stops forwarding bytes) does
// not hang gated requests: Config.StoreTimeout ends the Store call, and
// the middleware answers 503 with Retry-After, or serves with FailOpen,
// within the timeout and a little. When the database answers again, the
// same pool serves again.
func TestPostgresHangAnswers503WithinTheTimeout(t *testing.T) {
	store, proxy, _ := proxiedStore(t)
	const timeout = time.Second
	g, err := freemium.New(freemium.Config{Store: store, Free: freemium.Plan{Limit: 1_000_000},
		StoreTimeout: timeout, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	report := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("report")) })
	userID := func(*http.Request) (string, error) { return "u1", nil }
	gated := g.Middleware(freemium.MiddlewareOptions{UserID: userID})(report)
	failOpen := g.Middleware(freemium.MiddlewareOptions{UserID: userID, FailOpen: true})(report)
	serve := func(h http.Handler) (*httptest.ResponseRecorder, time.Duration) {
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/reports", nil))
		return rec, time.Since(start)
	}

	rec, _ := serve(gated)
	require.Equal(t, http.StatusOK, rec.Code)

	proxy.hang()
	rec, took := serve(gated)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	assert.Less(t, took, timeout+time.Second, "answered within the timeout plus a second")
	rec, took = serve(failOpen)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "report", rec.Body.String(), "served ungated")
	assert.Less(t, took, timeout+time.Second, "served within the timeout plus a second")

	proxy.resume()
	for attempt := 1; ; attempt++ {
		rec, _ = serve(gated)
		if rec.Code == http.StatusOK {
			break
		}
		require.Less(t, attempt, 10, "the pool serves again once the database answers")
	}
	u, err := g.Usage(context.Background(), "u1")
	require.NoError(t, err)
	assert.Equal(t, 2*freemium.DefaultEstimate, u.Used, "the two requests gated; the one served open is not counted")
}

// A database that stops answering: the caller's deadline holds.
func TestPostgresDeadlineHolds(t *testing.T) {
	store, _, schema := proxiedStore(t)
	g, err := freemium.New(freemium.Config{Store: store, Free: freemium.Plan{Limit: 100}})
	require.NoError(t, err)
	lock, err := testenv.Pool(t).Begin(context.Background())
	require.NoError(t, err)
	defer lock.Rollback(context.Background())
	// Hold the user's account row, so a Reserve waits for the lock.
	_, err = g.Reserve(context.Background(), "u1", 1)
	require.NoError(t, err)
	_, err = lock.Exec(context.Background(), "SELECT 1 FROM "+schema+".accounts WHERE user_id = 'u1' FOR UPDATE")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = g.Reserve(ctx, "u1", 1)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil, "Reserve failed with %v", err)
}

// awaitProgress waits for a signal on progress, failing the test after 10s.
func awaitProgress(t *testing.T, progress <-chan struct{}) {
	t.Helper()
	select {
	case <-progress:
	case <-time.After(10 * time.Second):
		t.Fatal("no progress within 10s")
	}
}

// The database restarts: while it is down, calls fail at once with an error
// (no hang); once it is back, the same pool serves again, without
// restarting the app, and what was recorded before is there.
func TestPostgresRestart(t *testing.T) {
	store, proxy, _ := proxiedStore(t)
	g, err := freemium.New(freemium.Config{Store: store, Free: freemium.Plan{Limit: 1000}})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, g.Record(ctx, "u1", 10, "job-1"))

	proxy.down.Store(true)
	proxy.cut()
	for _, call := range []func(context.Context) error{
		func(ctx context.Context) error { _, err := g.Check(ctx, "u1", 1); return err },
		func(ctx context.Context) error { _, err := g.Reserve(ctx, "u1", 1); return err },
		func(ctx context.Context) error { return g.Record(ctx, "u1", 5, "job-2") },
	} {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := call(cctx)
		assert.Error(t, err, "the database is down")
		assert.NoError(t, cctx.Err(), "the error came before the deadline: %v", err)
		cancel()
	}

	proxy.down.Store(false)
	require.NoError(t, g.Record(ctx, "u1", 5, "job-2"))
	require.NoError(t, g.Record(ctx, "u1", 5, "job-2"), "the same key again")
	u, err := g.Usage(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(15), u.Used, "the record before the restart, and the one after, once")
}

// A latency spike: a caller's deadline shorter than the spike ends the call
// with the deadline's error; a longer one, within Config.StoreTimeout, is
// served; a Commit made under the spike lands once.
func TestPostgresLatencySpike(t *testing.T) {
	store, proxy, _ := proxiedStore(t)
	g, err := freemium.New(freemium.Config{Store: store, Free: freemium.Plan{Limit: 1000}, StoreTimeout: 30 * time.Second})
	require.NoError(t, err)
	ctx := context.Background()
	r, err := g.Reserve(ctx, "u1", 100)
	require.NoError(t, err)

	proxy.delay.Store(int64(300 * time.Millisecond))
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = g.Check(short, "u1", 1)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	long, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, r.Commit(long, 90))
	proxy.delay.Store(0)
	require.NoError(t, r.Commit(ctx, 90), "a repeated commit")
	u, err := g.Usage(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(90), u.Used)
	assert.Zero(t, u.Reserved)
}
