package memindex

import (
	"fmt"
	"math"
)

// Rebuild builds, as version v, the index of old's things that keep
// reports true for (their rings, bands and coordinates copied, not
// computed again) followed by added (indexed as Build does). It answers
// exactly as Build would on the same things: the arrays copied are the
// ones Build made from the same coordinates, moved to new offsets. Only
// the cell cover is built again, from every polygon.
func Rebuild(v Version, old *Index, keep func(id int64) bool, added []Thing) (*Index, error) {
	ix := &Index{version: v}
	var kept []int
	var nPolys, nRings, nCoords, nBands, nSegs int
	for ti := range old.things {
		t := &old.things[ti]
		if !keep(t.id) {
			continue
		}
		kept = append(kept, ti)
		r0, r1 := old.thingRings(t)
		nPolys += int(t.nPolys)
		nRings += r1 - r0
		for ri := r0; ri < r1; ri++ {
			r := &old.rings[ri]
			nCoords += 2 * int(r.end-r.start)
			if r.bands > 0 {
				nBands += int(r.bands) + 1
				nSegs += int(old.bandStart[r.bandOff+r.bands] - old.bandStart[r.bandOff])
			}
		}
	}
	ix.presize(added, len(kept), nPolys, nRings, nCoords)
	ix.bandStart = make([]uint32, 0, nBands)
	ix.segs = make([]uint32, 0, nSegs)
	for _, ti := range kept {
		if err := ix.copyThing(old, ti); err != nil {
			return nil, err
		}
	}
	for i, t := range added {
		if err := ix.add(t); err != nil {
			return nil, fmt.Errorf("thing %d (id %d): %w", i, t.ID, err)
		}
	}
	ix.finish()
	return ix, nil
}

// thingRings returns the range of t's rings in ix.rings: a thing's
// polygons, rings and coordinates are contiguous, in order.
func (ix *Index) thingRings(t *thing) (int, int) {
	first := &ix.polys[t.firstPoly]
	last := &ix.polys[t.firstPoly+t.nPolys-1]
	return int(first.firstRing), int(last.firstRing + last.nRings)
}

// copyThing appends old's thing ti, its polygons, rings, coordinates and
// bands, at ix's offsets.
func (ix *Index) copyThing(old *Index, ti int) error {
	t := old.things[ti]
	r0, r1 := old.thingRings(&t)
	if len(ix.polys) > math.MaxInt32-int(t.nPolys) {
		return fmt.Errorf("thing id %d: too many polygons for one index", t.id)
	}
	var v0, v1 uint32 // the thing's vertices (none if its polygons are all empty)
	if r1 > r0 {
		v0, v1 = old.rings[r0].start, old.rings[r1-1].end
	}
	vStart := uint32(len(ix.coords) / 2)
	if uint64(vStart)+uint64(v1-v0) > math.MaxUint32 {
		return fmt.Errorf("thing id %d: too many vertices for one index", t.id)
	}
	nt := int32(len(ix.things))
	polyDelta := int32(len(ix.polys)) - t.firstPoly
	ringDelta := int32(len(ix.rings)) - int32(r0)
	for pi := t.firstPoly; pi < t.firstPoly+t.nPolys; pi++ {
		p := old.polys[pi]
		p.thing, p.firstRing = nt, p.firstRing+ringDelta
		ix.polys = append(ix.polys, p)
	}
	ix.coords = append(ix.coords, old.coords[2*v0:2*v1]...)
	for ri := r0; ri < r1; ri++ {
		r := old.rings[ri]
		// Unsigned offsets move by the difference, wrapping as they may:
		// the results are the new offsets, all in range.
		r.start, r.end = r.start-v0+vStart, r.end-v0+vStart
		if r.bands > 0 {
			bands := old.bandStart[r.bandOff : r.bandOff+r.bands+1]
			segs := old.segs[bands[0]:bands[r.bands]]
			sStart := uint32(len(ix.segs))
			r.bandOff = uint32(len(ix.bandStart))
			for _, b := range bands {
				ix.bandStart = append(ix.bandStart, b-bands[0]+sStart)
			}
			for _, s := range segs {
				ix.segs = append(ix.segs, s-v0+vStart)
			}
		}
		ix.vertices += int(r.end - r.start)
		ix.rings = append(ix.rings, r)
	}
	t.firstPoly += polyDelta
	ix.things = append(ix.things, t)
	return nil
}
