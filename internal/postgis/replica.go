package postgis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

// The reading database may be a hot standby streaming from the primary
// (DATABASE_URL on the standby, DATABASE_WRITE_URL on the primary). A
// Replica watches it from both sides:
//
//   - Lag, for readiness. The standby's own clock is no measure:
//     now() - pg_last_xact_replay_timestamp() grows while the primary is
//     idle (nothing to replay is not lag), and jumps to the whole idle time
//     as soon as a long import starts streaming. Instead, every check
//     samples the primary's flushed WAL position (pg_current_wal_flush_lsn,
//     which is what the primary streams) with the time it was seen, and
//     compares the standby's replay position (pg_last_wal_replay_lsn) with
//     the samples: the lag is how long ago the primary was first seen at a
//     position the standby has not replayed yet, and 0 once the standby has
//     replayed the last sample. An idle primary means no lag; a standby cut
//     off from a primary that goes on writing lags more and more; the
//     measure is as fine as the check interval (HEALTH_CHECK_INTERVAL).
//   - Read-your-writes: WritePosition is the primary's flushed position
//     after a write, WaitFor waits until the standby has replayed it.
//
// Against a reading database that is not in recovery (a primary, or a
// standby since promoted) there is no lag and nothing to wait for.
const (
	// replicaStateSQL asks the reading database whether it is a standby
	// and how far it has replayed (NULL before it has replayed anything).
	replicaStateSQL = `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text`
	// primaryPositionSQL fails (SQLSTATE 55000) on a server in recovery.
	primaryPositionSQL = `SELECT pg_current_wal_flush_lsn()::text`
	// replayedSQL: has the reading database replayed $1, or is it no
	// standby at all?
	replayedSQL = `SELECT NOT pg_is_in_recovery() OR coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)`
)

// maxLagSamples bounds the primary positions kept while a standby does not
// catch up: the oldest one (which the lag is measured from) stays, the
// ones after it are dropped first. At a 2 s check interval that is over
// two hours of exact history.
const maxLagSamples = 4096

// Replica checks the reading database against the primary; see above. It
// implements geo.ReadYourWrites and grpcapi's Pinger.
type Replica struct {
	read    *pgxpool.Pool // consistency waits
	check   *pgxpool.Pool // Ping: the reading database, on a connection of its own
	primary *pgxpool.Pool
	maxLag  atomic.Int64 // time.Duration; 0: the lag does not matter
	polls   atomic.Int64 // replay checks of WaitFor and the poller, for tests
	loops   atomic.Int64 // poll loops started, for tests
	waiters replayWaiters

	mu       sync.Mutex
	samples  []lagSample // primary positions not yet replayed, oldest first
	caughtUp bool        // the standby has replayed a sampled position
	lag      time.Duration
	standby  bool
}

type lagSample struct {
	at  time.Time
	lsn uint64
}

var _ geo.ReadYourWrites = (*Replica)(nil)

// NewReplica returns a Replica of the reading pool read, checked for
// readiness through check (OpenCheck: the same database, a connection
// that requests cannot take), whose primary is reached through primary: a
// small pool of its own (OpenProbe), so that imports holding the writing
// pool's connections cannot stop the lag being measured or a write's
// position being read. A standby lagging more than maxLag (0: any lag) is
// not ready.
func NewReplica(read, check, primary *pgxpool.Pool, maxLag time.Duration) *Replica {
	r := &Replica{read: read, check: check, primary: primary}
	r.maxLag.Store(int64(maxLag))
	return r
}

// SetMaxLag changes the lag beyond which Ping fails (MAX_REPLICA_LAG).
func (r *Replica) SetMaxLag(d time.Duration) { r.maxLag.Store(int64(d)) }

// MaxLag returns the lag beyond which Ping fails.
func (r *Replica) MaxLag() time.Duration { return time.Duration(r.maxLag.Load()) }

// Ping reports whether the reading database answers and, when it is a
// standby, whether it lags the primary by at most MAX_REPLICA_LAG
// (Unavailable otherwise). Call it periodically (readiness does): each
// call samples the primary's position. A standby must have caught up with
// the primary once before it is ready; while the primary does not answer,
// the standby is measured against the positions last seen.
func (r *Replica) Ping(ctx context.Context) error {
	var inRecovery bool
	var replayText *string
	if err := r.check.QueryRow(ctx, replicaStateSQL).Scan(&inRecovery, &replayText); err != nil {
		return classify(ctx, "ping database", err)
	}
	now := time.Now()
	if !inRecovery {
		r.mu.Lock()
		r.samples, r.caughtUp, r.lag, r.standby = nil, false, 0, false
		r.mu.Unlock()
		return nil
	}
	var replay uint64
	if replayText != nil {
		var err error
		if replay, err = parseLSN(*replayText); err != nil {
			return geo.Wrap(geo.Internal, err, "internal error")
		}
	}
	primary, perr := r.primaryPosition(ctx)
	r.mu.Lock()
	lag, known := r.observe(now, replay, primary, perr == nil)
	r.mu.Unlock()
	maxLag := time.Duration(r.maxLag.Load())
	switch {
	case maxLag <= 0:
		return nil
	case !known:
		return geo.Errorf(geo.Unavailable, "the standby has not yet replayed the primary's position seen at start")
	case lag > maxLag:
		return geo.Errorf(geo.Unavailable, "the standby replays %s behind the primary, more than MAX_REPLICA_LAG (%s)", lag.Round(time.Millisecond), maxLag)
	}
	return nil
}

// observe records a check of a standby that has replayed up to replay,
// with the primary at primary (when primaryKnown), and returns the lag, or
// false when it is not known yet (the standby has not caught up with any
// position sampled since start). r.mu is held.
func (r *Replica) observe(now time.Time, replay, primary uint64, primaryKnown bool) (time.Duration, bool) {
	r.standby = true
	if primaryKnown {
		if primary <= replay {
			r.caughtUp = true
		} else if n := len(r.samples); n == 0 || primary > r.samples[n-1].lsn {
			if n >= maxLagSamples {
				r.samples = append(r.samples[:1], r.samples[2:]...)
			}
			r.samples = append(r.samples, lagSample{at: now, lsn: primary})
		}
	}
	i := 0
	for i < len(r.samples) && r.samples[i].lsn <= replay {
		i++
	}
	if i > 0 {
		r.caughtUp = true
		r.samples = append(r.samples[:0], r.samples[i:]...)
	}
	switch {
	case len(r.samples) == 0:
		// Replayed everything sampled; with no sample at all (the primary
		// has not answered since start) there is nothing better to serve.
		r.lag = 0
		return 0, r.caughtUp || !primaryKnown
	case !r.caughtUp:
		r.lag = now.Sub(r.samples[0].at)
		return r.lag, false
	}
	r.lag = now.Sub(r.samples[0].at)
	return r.lag, true
}

// Report sends db.replica_lag_ms, the lag last measured, when the reading
// database is a standby.
func (r *Replica) Report(m metrics.Metrics) {
	r.mu.Lock()
	lag, standby := r.lag, r.standby
	r.mu.Unlock()
	if standby {
		m.Gauge("db.replica_lag_ms", lag.Milliseconds())
	}
}

func (r *Replica) primaryPosition(ctx context.Context) (uint64, error) {
	var text string
	if err := r.primary.QueryRow(ctx, primaryPositionSQL).Scan(&text); err != nil {
		return 0, classify(ctx, "read the primary's WAL position", err)
	}
	return parseLSN(text)
}

// WritePosition returns the primary's flushed WAL position: every
// transaction committed before the call is at or before it, because the
// writing pool never commits asynchronously (see OpenWriter).
func (r *Replica) WritePosition(ctx context.Context) (geo.Position, error) {
	lsn, err := r.primaryPosition(ctx)
	return geo.Position(lsn), err
}

// Wait polling: the first check is at once (usually the standby has
// replayed a write long before its client asks), then one loop for all
// waiters checks at growing intervals up to waitPollMax, each one short
// statement on the reading pool that holds no connection in between.
const (
	waitPollMin = time.Millisecond
	waitPollMax = 20 * time.Millisecond
)

// WaitFor returns once the reading database has replayed p, or at once when
// it is not a standby. A position beyond the primary's own is no position
// this service handed out (a forged token, or one of another database):
// it is refused with Invalid at once, after one look at the primary,
// rather than polled for until MAX_REPLICA_LAG. Otherwise WaitFor gives up
// with Unavailable after MAX_REPLICA_LAG (a standby that far behind is not
// ready: another instance may have caught up), with Timeout when ctx's
// deadline comes first.
func (r *Replica) WaitFor(ctx context.Context, p geo.Position) error {
	if maxLag := time.Duration(r.maxLag.Load()); maxLag > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, maxLag, errWaitBound)
		defer cancel()
	}
	// Usually the standby has replayed a write long before its client
	// reads: one check at once, then the shared poll loop.
	lsn := formatLSN(uint64(p))
	var replayed bool
	r.polls.Add(1)
	if err := r.read.QueryRow(ctx, replayedSQL, lsn).Scan(&replayed); err != nil {
		if ctx.Err() != nil {
			return r.waitEnded(ctx) // the bound passed during the check itself
		}
		return classify(ctx, "wait for the replica", err)
	}
	if replayed {
		return nil
	}
	// The primary unreachable is no reason to refuse: wait as before,
	// within MAX_REPLICA_LAG.
	if primary, err := r.primaryPosition(ctx); err == nil && uint64(p) > primary {
		return geo.Errorf(geo.Invalid, "consistency_token names a write position (%s) beyond the primary's (%s): it was not handed out by this service; pass the consistency_token a write returned", lsn, formatLSN(primary))
	}
	done, stop := r.await(uint64(p))
	defer stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	return r.waitEnded(ctx)
}

// waitEnded is WaitFor's answer once its context has ended: Unavailable
// when MAX_REPLICA_LAG passed, Timeout when the caller's deadline did.
func (r *Replica) waitEnded(ctx context.Context) error {
	switch {
	case errors.Is(context.Cause(ctx), errWaitBound):
		return geo.Errorf(geo.Unavailable, "the replica this instance reads from has not replayed the write of consistency_token within MAX_REPLICA_LAG (%s): retry, another instance may have", time.Duration(r.maxLag.Load()))
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return geo.Errorf(geo.Timeout, "the deadline passed before the replica this instance reads from replayed the write of consistency_token")
	}
	return ctx.Err()
}

// replayWaiters are the WaitFor calls waiting for the standby, each with
// the position it waits for: one poll loop serves them all, however many
// there are, so waiting costs one short statement per interval, not one
// per waiter.
type replayWaiters struct {
	mu      sync.Mutex
	waiting map[chan struct{}]uint64
	running bool // a poll loop runs
}

// await registers a waiter for lsn: done closes once the standby has
// replayed it. stop unregisters it. The poll loop starts with the first
// waiter and ends with the last.
func (r *Replica) await(lsn uint64) (done chan struct{}, stop func()) {
	w := &r.waiters
	done = make(chan struct{})
	w.mu.Lock()
	if w.waiting == nil {
		w.waiting = map[chan struct{}]uint64{}
	}
	w.waiting[done] = lsn
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		r.loops.Add(1)
		go r.pollReplay()
	}
	return done, func() {
		w.mu.Lock()
		delete(w.waiting, done)
		w.mu.Unlock()
	}
}

// pollReplay asks the reading database how far it has replayed, at
// growing intervals up to waitPollMax, and wakes the waiters it has
// passed, until none waits. A failed check is tried again at the next
// interval; the waiters' own bounds (MAX_REPLICA_LAG, their deadlines) end
// their waits.
func (r *Replica) pollReplay() {
	w := &r.waiters
	for pause := waitPollMin; ; pause = min(2*pause, waitPollMax) {
		time.Sleep(pause)
		w.mu.Lock()
		if len(w.waiting) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		replay, ok := r.replayed()
		if !ok {
			continue
		}
		w.mu.Lock()
		for done, lsn := range w.waiting {
			if lsn <= replay {
				close(done)
				delete(w.waiting, done)
			}
		}
		w.mu.Unlock()
	}
}

// replayed returns how far the reading database has replayed: everything
// when it is not a standby.
func (r *Replica) replayed() (uint64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r.polls.Add(1)
	var inRecovery bool
	var replayText *string
	if err := r.read.QueryRow(ctx, replicaStateSQL).Scan(&inRecovery, &replayText); err != nil {
		return 0, false
	}
	if !inRecovery {
		return ^uint64(0), true
	}
	if replayText == nil {
		return 0, false
	}
	replay, err := parseLSN(*replayText)
	return replay, err == nil
}

var errWaitBound = errors.New("MAX_REPLICA_LAG passed while waiting for the replica")

// parseLSN reads PostgreSQL's text form of a WAL position, "16/B374D848".
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("not a WAL position: %q", s)
	}
	return h<<32 | l, nil
}

// formatLSN writes p in PostgreSQL's text form.
func formatLSN(p uint64) string {
	return strconv.FormatUint(p>>32, 16) + "/" + strconv.FormatUint(p&0xFFFFFFFF, 16)
}
