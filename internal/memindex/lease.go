package memindex

import (
	"context"
	"errors"
	"time"

	"github.com/geosearch/search/internal/geo"
)

// lease is how long this instance's index may answer reads without a
// consistency token (docs/INDEX.md, "Consistency: the lease"), on the
// local monotonic clock.
type lease struct {
	// from is when the first heartbeat of this unbroken run of them
	// returned: only a set whose refresh began after it may answer. A
	// writer that found no live row for this instance, or found it
	// expired, returned before it; the refresh after it sees its write.
	from time.Time
	// until is the start of the last successful heartbeat (before it was
	// sent, so before the database stamped it) plus the lease: the row
	// expires no earlier by the database's clock.
	until time.Time
}

// UsePeers makes the registry take part in the lease through p: it
// heartbeats after its refreshes and answers reads without a token only
// while its lease holds, and its SearchService's writes wait for the other
// instances' indexes. Call it before Run. A registry without peers
// answers every token-less read from its last set (tests of one registry).
func (r *Registry) UsePeers(p *Peers) {
	r.peers = p
	if p != nil && p.lease/3 < r.interval {
		r.interval = p.lease / 3 // a heartbeat at least every third of the lease
	}
}

// Peers returns the registry's peers, nil without.
func (r *Registry) Peers() *Peers { return r.peers }

// Listen wakes the registry whenever a write is notified, while the index
// is on (Peers.Listen); it does nothing without peers. It returns when ctx
// ends.
func (r *Registry) Listen(ctx context.Context) {
	if r.peers != nil {
		r.peers.Listen(ctx, r.Enabled, r.Wake)
	}
}

// leased reports whether st may answer a read without a token now: its
// refresh began after the lease's run began, and the lease has not run
// out.
func (r *Registry) leased(st *state) bool {
	if r.peers == nil {
		return true
	}
	l := r.lease.Load()
	return l != nil && st.since.After(l.from) && time.Now().Before(l.until)
}

// Leased reports whether the lease holds now (Monitor, metrics, tests).
func (r *Registry) Leased() bool {
	l := r.lease.Load()
	return r.peers == nil || l != nil && time.Now().Before(l.until)
}

// Heartbeat tells the primary where the published set stands (Peers.beat;
// position 0 before the first set) and extends the lease; with the index
// off it ends the lease and deletes the row instead. Run calls it after
// every successful refresh, and before a refresh while the lease does not
// hold, so that the set that refresh publishes may answer at once.
// Nothing is sent while the instance is not ready, or without peers.
func (r *Registry) Heartbeat(ctx context.Context) error {
	p := r.peers
	if p == nil {
		return nil
	}
	if !r.enabled.Load() {
		return r.leave(ctx)
	}
	if r.notReady.Load() {
		return nil
	}
	var position geo.Position
	if st := r.state.Load(); st != nil {
		position = st.snapshot.Before
	}
	start := time.Now()
	if err := r.following(start, position); err != nil {
		return err
	}
	primary, err := p.beat(ctx, position, !r.listed.Load())
	if err != nil {
		return err
	}
	r.listed.Store(true)
	r.samples = append(r.samples, sample{at: start, position: primary})
	end := time.Now()
	next := &lease{from: end, until: start.Add(p.lease)}
	if old := r.lease.Load(); old != nil && end.Before(old.until) {
		next.from = old.from // unbroken: the row never expired meanwhile
	}
	r.lease.Store(next)
	if next.from == end {
		r.Wake() // a set read from now on may answer
	}
	return nil
}

// sample is the primary's insert position some time after at.
type sample struct {
	at       time.Time
	position uint64
}

// errBehind: the index lags too far behind the primary to renew its lease.
var errBehind = errors.New("the index lags more than half its lease behind the primary: not renewing the lease until it catches up")

// following returns errBehind when before (the published set's position)
// is still short of where the primary was half a lease ago: an index
// that is alive but does not follow (its standby's replay paused or far
// behind, refreshes that publish no newer set) must not keep writers
// waiting, so it lets its lease run out instead. It drops the samples it
// no longer needs. Only Run's goroutine (or a test's) calls it.
func (r *Registry) following(now time.Time, before geo.Position) error {
	cut := now.Add(-r.peers.lease / 2)
	i := 0
	for i+1 < len(r.samples) && !r.samples[i+1].at.After(cut) {
		i++ // samples[i+1] is old enough too, and newer
	}
	r.samples = r.samples[i:]
	if len(r.samples) > 0 && !r.samples[0].at.After(cut) && uint64(before) < r.samples[0].position {
		return errBehind
	}
	return nil
}

// leave ends the lease, then deletes the row: writers stop waiting for
// this instance only once it answers nothing from memory without a token.
func (r *Registry) leave(ctx context.Context) error {
	r.lease.Store(nil)
	if r.peers == nil || !r.listed.Load() {
		return nil
	}
	if err := r.peers.leave(ctx); err != nil {
		return err
	}
	r.listed.Store(false)
	return nil
}

// leaveTimeout bounds the row's deletion at shutdown: a row left behind
// only makes writes wait until it expires.
const leaveTimeout = 2 * time.Second

// leaveAtExit ends the lease and deletes the row when Run ends.
func (r *Registry) leaveAtExit(ctx context.Context) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
	defer cancel()
	if err := r.leave(lctx); err != nil {
		r.logger.Warn("in-memory index: could not remove its row; writes wait for it until its lease expires", "error", err.Error())
	}
}

// awaitPeers makes a write through this instance wait for the other
// instances' indexes (Peers.AwaitWrite); ok says whether it succeeded.
func (r *Registry) awaitPeers(ctx context.Context, ok bool) {
	if r.peers != nil {
		r.peers.AwaitWrite(ctx, ok)
	}
}
