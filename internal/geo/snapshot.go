package geo

import (
	"context"
	"sync/atomic"
	"time"
)

// StoreSnapshot describes one read-only snapshot of the store as a reader
// of whole collections sees it (an in-memory index is built from one).
type StoreSnapshot struct {
	// Snapshot is the store's own description of the snapshot (for
	// PostgreSQL, pg_current_snapshot() as text: which transactions it
	// sees).
	Snapshot string
	// Position is the store's write position then (on a hot standby, the
	// position replayed).
	Position Position
	// Before is a read position taken before the snapshot was: every
	// write whose consistency token's position is below it had been
	// committed before the snapshot was taken, and is in it.
	Before Position
	// Engine names the arithmetic the store answers with (for PostGIS,
	// postgis_lib_version()).
	Engine string
	// Collections lists every collection in the snapshot, by name.
	Collections []CollectionHead
}

// CollectionHead is what a snapshot says of a collection without reading
// its things: when it last changed, and a marker that changes with every
// write to it.
type CollectionHead struct {
	Name      string
	UpdatedAt time.Time
	// Marker differs between two snapshots when the collection was
	// written between them (for PostgreSQL, the collection row's
	// updated_at and xmin).
	Marker string
}

// StoredThing is a thing as a collection reader hands it over: the fields
// a search returns (no GeometryGeoJSON), the stored geometry as WKB, and
// the bytes its properties take as the store sends them (Query.MaxBytes
// counts the bytes of every field so).
type StoredThing struct {
	Thing
	WKB             []byte
	PropertiesBytes int
}

// CollectionReader reads whole collections in one snapshot.
type CollectionReader interface {
	// ReadCollections opens one read-only snapshot of the store and calls
	// read with its description and with a scanner of that snapshot.
	// Returns read's error as it is.
	ReadCollections(ctx context.Context, read func(s StoreSnapshot, scan SnapshotScanner) error) error
}

// SnapshotScanner reads things in one snapshot of the store. Each method
// returns fn's error as it is.
type SnapshotScanner interface {
	// Scan calls fn with every thing of collection, in id order.
	Scan(collection string, fn func(StoredThing) error) error
	// ScanSince calls fn with every thing of collection written (imported
	// or replaced) by a transaction that the earlier snapshot since (a
	// StoreSnapshot.Snapshot) does not see, in id order: with ScanIDs, what
	// changed between the two.
	ScanSince(collection, since string, fn func(StoredThing) error) error
	// ScanIDs calls fn with the id of every thing of collection.
	ScanIDs(collection string, fn func(id int64) error) error
}

// ReadMark records the consistency token a read carried, once the read
// has waited for it: a store answering from something older than the
// database (an in-memory index) must answer it only from a snapshot
// known to hold the token's write.
type ReadMark struct{ p atomic.Pointer[Position] }

type readMarkKey struct{}

// WithReadMark returns ctx carrying a new, unset ReadMark.
func WithReadMark(ctx context.Context) (context.Context, *ReadMark) {
	m := new(ReadMark)
	return context.WithValue(ctx, readMarkKey{}, m), m
}

// Set records that the read waited for the token of position p.
func (m *ReadMark) Set(p Position) { m.p.Store(&p) }

// MarkRead sets the ReadMark ctx carries, if it carries one, to p.
func MarkRead(ctx context.Context, p Position) {
	if m, _ := ctx.Value(readMarkKey{}).(*ReadMark); m != nil {
		m.Set(p)
	}
}

// ReadAfter returns the position of the consistency token the read ctx
// belongs to waited for, and false when it carried none.
func ReadAfter(ctx context.Context) (Position, bool) {
	m, _ := ctx.Value(readMarkKey{}).(*ReadMark)
	if m == nil {
		return 0, false
	}
	p := m.p.Load()
	if p == nil {
		return 0, false
	}
	return *p, true
}

// MemoryIndex describes one collection as an in-memory index holds it
// (Monitor reports it).
type MemoryIndex struct {
	Collection string
	InMemory   bool
	// Reason says why a collection is not in memory.
	Reason string
	// Bytes, Things and Vertices describe the index in memory.
	Bytes            int64
	Things, Vertices int
	// Snapshot and Position are the store's snapshot the index was read
	// in and its position then; UpdatedAt the collection's last change.
	Snapshot  string
	Position  Position
	UpdatedAt time.Time
}
