package memindex

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/wkb"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

// Registry holds the in-memory index of every collection that fits the
// budget, and follows the store: each refresh reads, in one snapshot of
// the store, every collection's change marker and the things of the
// collections that changed, builds their indexes, and publishes the whole
// set at once. A search reads the published set once, so it sees every
// collection as of one snapshot (docs/INDEX.md, "Consistency").
type Registry struct {
	src      geo.CollectionReader
	logger   *slog.Logger
	interval time.Duration
	enabled  atomic.Bool
	budget   atomic.Int64
	state    atomic.Pointer[state]
	publish  sync.Mutex // orders Apply's switch and Refresh's publication
	wake     chan struct{}
	// wrote is when a write through this instance last returned: reads
	// are answered from memory only from a refresh that began after it,
	// so that a client reads its own writes on one instance, as from the
	// database.
	wrote atomic.Pointer[time.Time]
	// notReady is set while the instance is not ready (the database does
	// not answer, or the standby lags too far): memory answers nothing
	// then, so that reads fail or wait as they do on the database, and an
	// index that cannot follow is not served.
	notReady atomic.Bool
	// refreshes counts the refreshes published, for tests and Monitor.
	refreshes atomic.Int64
	// updates counts the collections read incrementally (follow.go).
	updates atomic.Int64
	// peers, lease and listed: the lease (lease.go); peers is nil in a
	// registry on its own.
	peers  *Peers
	lease  atomic.Pointer[lease]
	listed atomic.Bool // this instance's row exists
	// samples: the primary's positions at the last heartbeats (Run's
	// goroutine only).
	samples []sample
}

// state is one published set of indexes.
type state struct {
	// since is when the refresh that read it began: its snapshot was taken
	// after since, so it holds every write that returned before.
	since       time.Time
	snapshot    geo.StoreSnapshot // without Collections
	collections map[string]*collection
	names       []string      // every collection, in order
	all         []*collection // collections[names[i]] for each name
}

// collection is one collection as a state holds it: in memory (ix set) or
// not, and why.
type collection struct {
	head   geo.CollectionHead
	ix     *Index
	things map[int64]*record
	bytes  int64
	// need is, for a collection left out for the budget, the bytes it was
	// known to need at least; it is tried again when more is free.
	need   int64
	reason string // why it is not in memory
}

// record is what a search returns of a thing from memory.
type record struct {
	thing geo.Thing
	// propertiesBytes: the properties as the store sends them (MaxBytes).
	propertiesBytes int
}

// NewRegistry returns a registry reading from src, configured by cfg. It
// holds nothing until Run's first refresh: until then every read goes to
// the store.
func NewRegistry(src geo.CollectionReader, cfg Config, logger *slog.Logger) *Registry {
	r := &Registry{src: src, logger: logger, interval: cfg.PollInterval, wake: make(chan struct{}, 1)}
	r.Apply(cfg)
	return r
}

// Apply takes cfg's live settings: the switch and the budget. Turning the
// index off sends every read to the store at once and frees the indexes;
// the next refresh applies a new budget.
func (r *Registry) Apply(cfg Config) {
	r.budget.Store(cfg.BudgetBytes)
	r.publish.Lock()
	r.enabled.Store(cfg.Enabled())
	if !cfg.Enabled() {
		r.state.Store(nil)
		r.lease.Store(nil) // Run deletes the row
	}
	r.publish.Unlock()
	r.Wake()
}

// Enabled reports whether the index is on (MEMINDEX) as last applied.
func (r *Registry) Enabled() bool { return r.enabled.Load() }

// Budget returns the memory budget (MEMINDEX_BUDGET_BYTES) as last applied.
func (r *Registry) Budget() int64 { return r.budget.Load() }

// SetReady follows the instance's readiness (grpcapi.Readiness.OnChange):
// while it is not ready, every read goes to the database; when it is
// again, a refresh runs at once.
func (r *Registry) SetReady(ready bool) {
	r.notReady.Store(!ready)
	if ready {
		r.Wake()
	}
}

// Wrote records that a write through this instance returned just now, and
// wakes Run.
func (r *Registry) Wrote() {
	now := time.Now()
	r.wrote.Store(&now)
	r.Wake()
}

// Wake makes Run refresh now rather than at the next interval.
func (r *Registry) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run refreshes every PollInterval (at least every third of the lease),
// and when woken, until ctx ends; with peers, it heartbeats after every
// successful refresh, and deletes its row at the end. A failed refresh
// keeps the published indexes and is retried at the next interval; without
// a heartbeat the lease runs out.
func (r *Registry) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	defer r.leaveAtExit(ctx)
	refreshes := failureLog{logger: r.logger,
		failed: "in-memory index: refresh failed; serving the last one and retrying", recovered: "in-memory index: refreshing again"}
	beats := failureLog{logger: r.logger,
		failed:    "in-memory index: heartbeat failed; reads without a token go to the database once the lease runs out",
		recovered: "in-memory index: heartbeat sent again"}
	for {
		if !r.Leased() {
			_ = r.Heartbeat(ctx) // as below, after the refresh
		}
		err := r.Refresh(ctx)
		refreshes.note(ctx, err)
		if err == nil {
			beats.note(ctx, r.Heartbeat(ctx))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
	}
}

// failureLog logs a loop's failure once, when it starts (a warning), and
// once when the loop succeeds again, not at every retry; nothing while its
// context ends.
type failureLog struct {
	logger            *slog.Logger
	failed, recovered string
	failing           bool
}

// note records one attempt's outcome.
func (l *failureLog) note(ctx context.Context, err error) {
	switch {
	case err != nil && ctx.Err() == nil:
		if !l.failing {
			l.logger.Warn(l.failed, "error", err.Error())
		}
		l.failing = true
	case err == nil && l.failing:
		l.logger.Info(l.recovered)
		l.failing = false
	}
}

// Refreshes returns how many refreshes were published.
func (r *Registry) Refreshes() int64 { return r.refreshes.Load() }

// Updates returns how many times a changed collection was read
// incrementally (only what changed) rather than whole.
func (r *Registry) Updates() int64 { return r.updates.Load() }

// Refresh reads the store once, loads what changed, and publishes the
// result. With the index off it does nothing.
func (r *Registry) Refresh(ctx context.Context) error {
	if !r.enabled.Load() {
		r.state.Store(nil)
		return nil
	}
	since := time.Now()
	old := r.state.Load()
	var next *state
	err := r.src.ReadCollections(ctx, func(snap geo.StoreSnapshot, scan geo.SnapshotScanner) error {
		var err error
		next, err = r.read(ctx, since, old, snap, scan)
		return err
	})
	if err != nil {
		return fmt.Errorf("in-memory index refresh: %w", err)
	}
	r.publish.Lock()
	defer r.publish.Unlock()
	if !r.enabled.Load() { // turned off while reading
		return nil
	}
	r.state.Store(next)
	r.refreshes.Add(1)
	return nil
}

// read builds the next state from snap: collections whose marker did not
// change keep their index, the others are loaded within the budget.
func (r *Registry) read(ctx context.Context, since time.Time, old *state, snap geo.StoreSnapshot, scan geo.SnapshotScanner) (*state, error) {
	heads := snap.Collections
	snap.Collections = nil
	next := &state{since: since, snapshot: snap, collections: make(map[string]*collection, len(heads))}
	budget := r.budget.Load()
	var used int64
	// Unchanged collections in memory keep their place first; one over
	// the budget before is read again only when as much is free as it was
	// known to need (it is not read at every poll).
	var changed []geo.CollectionHead
	var kept []*collection
	// prev: the index a changed collection had, which an update starts
	// from (follow.go).
	prev := map[string]*collection{}
	for _, h := range heads {
		next.names = append(next.names, h.Name)
		var c *collection
		if old != nil {
			c = old.collections[h.Name]
		}
		switch {
		case c == nil || c.head.Marker != h.Marker:
			changed = append(changed, h)
			if c != nil && c.ix != nil {
				prev[h.Name] = c
			}
		case c.ix != nil && used+c.bytes <= budget:
			next.collections[h.Name] = c
			used += c.bytes
		case c.ix == nil:
			kept = append(kept, c)
		default: // in memory, but the budget shrank
			changed = append(changed, h)
		}
	}
	for _, c := range kept {
		if c.need > 0 && budget-used >= c.need {
			changed = append(changed, c.head)
		} else {
			next.collections[c.head.Name] = c
		}
	}
	v, err := baseVersion(snap)
	for _, h := range changed {
		if err != nil {
			next.collections[h.Name] = &collection{head: h, reason: err.Error()}
			continue
		}
		// An update reads what changed since the old index; a position
		// behind the old index's (a standby that replayed less) or changes
		// that do not add up read the whole collection.
		var c *collection
		if p := prev[h.Name]; p != nil && p.ix.Version().LSN <= v.LSN {
			c, err = r.update(scan, p, h, v, budget-used)
		}
		if c == nil && (err == nil || errors.Is(err, errNotIncremental)) {
			if err != nil {
				r.logger.Warn("in-memory index: reading the whole collection", "collection", h.Name, "error", err.Error())
			}
			c, err = r.load(scan, h, v, budget-used)
		}
		if err != nil {
			return nil, err
		}
		next.collections[h.Name] = c
		used += c.bytes
	}
	next.all = make([]*collection, len(next.names))
	for i, name := range next.names {
		next.all[i] = next.collections[name]
	}
	return next, nil
}

// baseVersion is the version of every index built from snap, or why none
// can be.
func baseVersion(snap geo.StoreSnapshot) (Version, error) {
	if !matchedPostGIS(snap.Engine) {
		return Version{}, fmt.Errorf("PostGIS %s: %w", snap.Engine, ErrPostGISVersion)
	}
	s, err := ParseSnapshot(snap.Snapshot)
	if err != nil {
		return Version{}, err
	}
	return Version{Snapshot: s, LSN: uint64(snap.Position)}, nil
}

// errOverBudget stops the scan of a collection that does not fit.
var errOverBudget = errors.New("over the memory budget")

// load reads and indexes one collection within free bytes. A collection
// that does not fit, or whose geometry cannot be indexed, is returned
// without an index and a reason; an error is the store's.
func (r *Registry) load(scan geo.SnapshotScanner, h geo.CollectionHead, v Version, free int64) (*collection, error) {
	c := &collection{head: h, things: map[int64]*record{}}
	var things []Thing
	var estimate int64
	var badGeometry error
	err := scan.Scan(h.Name, func(t geo.StoredThing) error {
		g, err := wkb.Unmarshal(t.WKB)
		if err != nil {
			badGeometry = fmt.Errorf("thing %d: decode stored geometry: %w", t.ID, err)
			return badGeometry
		}
		t.Collection = h.Name // one string for every thing
		rec := newRecord(t)
		estimate += estimateBytes(g) + recordBytes(rec)
		if estimate > free {
			return errOverBudget
		}
		things = append(things, Thing{ID: t.ID, Geometry: g})
		c.things[t.ID] = rec
		return nil
	})
	switch {
	case errors.Is(err, errOverBudget):
		return r.leftOut(h, estimate, free), nil
	case badGeometry != nil:
		return r.failed(h, badGeometry), nil
	case err != nil:
		return nil, err
	}
	v.Collection, v.UpdatedAt = h.Name, h.UpdatedAt
	ix, err := Build(v, things)
	if err != nil {
		return r.failed(h, err), nil
	}
	return r.fit(c, ix, free), nil
}

// fit gives c its index ix and its size (the index and the records), or
// leaves the collection out when that is more than free.
func (r *Registry) fit(c *collection, ix *Index, free int64) *collection {
	c.ix = ix
	c.bytes = int64(ix.Bytes())
	for _, rec := range c.things {
		c.bytes += recordBytes(rec)
	}
	if c.bytes > free {
		return r.leftOut(c.head, c.bytes, free)
	}
	return c
}

func (r *Registry) leftOut(h geo.CollectionHead, need, free int64) *collection {
	r.logger.Info("in-memory index: collection left to the database: it does not fit the budget",
		"collection", h.Name, "needs_at_least_bytes", need, "free_bytes", max(free, 0))
	return &collection{head: h, need: max(need, 1), reason: "over the memory budget"}
}

func (r *Registry) failed(h geo.CollectionHead, err error) *collection {
	r.logger.Warn("in-memory index: collection left to the database", "collection", h.Name, "error", err.Error())
	return &collection{head: h, reason: err.Error()}
}

// estimateBytes is what a geometry costs in an index, about (docs/INDEX.md,
// "Memory"): 24 bytes per vertex and 250 per polygon.
func estimateBytes(g geom.T) int64 {
	polygons := 1
	if mp, ok := g.(*geom.MultiPolygon); ok {
		polygons = mp.NumPolygons()
	}
	vertices := 0
	if s := g.Stride(); s > 0 {
		vertices = len(g.FlatCoords()) / s
	}
	return 24*int64(vertices) + 250*int64(polygons)
}

// newRecord is the record of t, with encodings of its own.
func newRecord(t geo.StoredThing) *record {
	rec := &record{thing: t.Thing, propertiesBytes: t.PropertiesBytes}
	rec.thing.Encodings = new(geo.Encodings)
	return rec
}

// recordBytes is what a record costs, about: the struct, its strings, and
// four times its properties' JSON for the decoded map; and the encodings
// the edges may keep of it (geo.EncodingSlots of them, each about its
// strings and twice its properties' JSON: protobuf's Struct, say).
func recordBytes(rec *record) int64 {
	t := &rec.thing
	strs := int64(len(t.Key) + len(t.Name))
	encoded := int64(unsafe.Sizeof(geo.Encodings{})) + geo.EncodingSlots*(encodingBytes+strs+int64(len(t.Collection))+2*int64(rec.propertiesBytes))
	return int64(unsafe.Sizeof(*rec)) + 48 + strs + 4*int64(rec.propertiesBytes) + encoded
}

// encodingBytes is an encoding's fixed part, about: its message, its
// slot, the fixed-size fields.
const encodingBytes = 96

// Status lists every collection of the last refresh, by name; none when the
// index is off or has not read the store yet.
func (r *Registry) Status() []geo.MemoryIndex {
	st := r.state.Load()
	if st == nil {
		return nil
	}
	out := make([]geo.MemoryIndex, 0, len(st.names))
	for _, name := range st.names {
		c := st.collections[name]
		s := geo.MemoryIndex{Collection: name, Reason: c.reason, UpdatedAt: c.head.UpdatedAt}
		if c.ix != nil {
			v := c.ix.Version()
			s.InMemory, s.Bytes, s.Things, s.Vertices = true, c.bytes, c.ix.Len(), c.ix.Vertices()
			s.Snapshot, s.Position, s.UpdatedAt = v.Snapshot.String(), geo.Position(v.LSN), v.UpdatedAt
		}
		out = append(out, s)
	}
	return out
}

// Report sends, per collection, memindex.<collection>.in_memory (1 or 0),
// .bytes, .things and .lsn (the WAL position of the snapshot its index
// was read in), and memindex.bytes, the total.
func (r *Registry) Report(m metrics.Metrics) {
	var total int64
	for _, s := range r.Status() {
		in := int64(0)
		if s.InMemory {
			in = 1
		}
		p := "memindex." + s.Collection + "."
		m.Gauge(p+"in_memory", in)
		m.Gauge(p+"bytes", s.Bytes)
		m.Gauge(p+"things", int64(s.Things))
		m.Gauge(p+"lsn", int64(s.Position))
		total += s.Bytes
	}
	m.Gauge("memindex.bytes", total)
	if r.peers != nil && r.enabled.Load() {
		leased := int64(0)
		if r.Leased() {
			leased = 1
		}
		m.Gauge("memindex.leased", leased)
	}
}
