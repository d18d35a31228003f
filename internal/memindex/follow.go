package memindex

import (
	"errors"
	"fmt"

	"github.com/twpayne/go-geom/encoding/wkb"

	"github.com/geosearch/search/internal/geo"
)

// update builds the next version of old's collection from what changed
// since old's snapshot, within free bytes: the things written by a
// transaction old's snapshot did not see (new or replaced) are read and
// indexed, the ones gone are dropped, and the rest are copied from old's
// index (Rebuild) with their records, so that an import of one feature
// costs about one feature's reading and decoding. The result is the
// collection as the refresh's snapshot holds it, exactly as load would
// read it (docs/INDEX.md, "Following the database").
func (r *Registry) update(scan geo.SnapshotScanner, old *collection, h geo.CollectionHead, v Version, free int64) (*collection, error) {
	ids := make(map[int64]bool, len(old.things))
	if err := scan.ScanIDs(h.Name, func(id int64) error {
		ids[id] = true
		return nil
	}); err != nil {
		return nil, err
	}
	c := &collection{head: h, things: make(map[int64]*record, len(ids))}
	var added []Thing
	var badGeometry error
	err := scan.ScanSince(h.Name, old.ix.Version().Snapshot.String(), func(t geo.StoredThing) error {
		g, err := wkb.Unmarshal(t.WKB)
		if err != nil {
			badGeometry = fmt.Errorf("thing %d: decode stored geometry: %w", t.ID, err)
			return badGeometry
		}
		t.Collection = h.Name
		c.things[t.ID] = newRecord(t)
		added = append(added, Thing{ID: t.ID, Geometry: g})
		return nil
	})
	switch {
	case badGeometry != nil:
		return r.failed(h, badGeometry), nil
	case err != nil:
		return nil, err
	}
	// Kept: in old, still in the collection, not written since.
	written := make(map[int64]bool, len(added))
	for _, t := range added {
		written[t.ID] = true
	}
	keep := func(id int64) bool { return ids[id] && !written[id] }
	for id, rec := range old.things {
		if keep(id) {
			c.things[id] = rec
		}
	}
	if len(c.things) != len(ids) {
		// A thing the snapshot holds that neither old nor the changes
		// have: old's snapshot and this one do not fit together (they
		// cannot, as written_xact is set by every write, unless the
		// store was restored or replaced): read the whole collection.
		return nil, errNotIncremental
	}
	v.Collection, v.UpdatedAt = h.Name, h.UpdatedAt
	ix, err := Rebuild(v, old.ix, keep, added)
	if err != nil {
		return r.failed(h, err), nil
	}
	fitted := r.fit(c, ix, free)
	if fitted == c {
		r.updates.Add(1)
	}
	return fitted, nil
}

// errNotIncremental: an update found the old index and the store's
// changes inconsistent; the collection is read whole instead.
var errNotIncremental = errors.New("the changes since the old index do not add up")
