// Package memindex is an exact in-memory index of a collection's polygons
// for point containment: for every point, Lookup answers what PostGIS's
// ST_Contains(geom, point) answers on the stored geometry (boundaries not
// contained, holes and multipolygons included), by running PostGIS 3.3's own
// point-in-polygon arithmetic (see pip.go) on candidates that a cell cover
// (cells.go) finds. Where PostGIS's own answer depends on which of its two code paths
// a statement takes, Lookup says it is not sure, and the caller asks
// PostGIS.
//
// An Index is immutable once built and safe for concurrent lookups; a new
// version of a collection is a new Index swapped in whole.
package memindex

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/twpayne/go-geom"
)

// Thing is one stored thing's geometry as the loader hands it over.
type Thing struct {
	ID int64
	// Geometry is a *geom.MultiPolygon or a *geom.Polygon in longitude and
	// latitude (XY, or more dimensions of which only X and Y are read).
	Geometry geom.T
}

// Index answers point containment for one version of one collection.
type Index struct {
	version Version

	things []thing
	polys  []polygon
	rings  []ring
	coords []float64 // every ring's vertices, x and y interleaved

	// Each ring with bands has bands+1 offsets in bandStart, from
	// ring.bandOff; the segments of band b are
	// segs[bandStart[bandOff+b]:bandStart[bandOff+b+1]], each the index of
	// its first vertex.
	bandStart []uint32
	segs      []uint32

	cover cellCover // polygon boxes -> polygon index (cells.go)

	vertices int
}

type thing struct {
	id        int64
	box       floatBox // the stored geometry's float box (short circuit 1)
	firstPoly int32
	nPolys    int32
	// degenerate: a segment shorter than 1e-12 (where PostGIS's two paths
	// may differ), or one so short in x or y that products underflow.
	// Its polygons are never pruned, and both paths are evaluated.
	degenerate bool
	// unsupported: a shape PostGIS's cached path mishandles (an empty
	// polygon inside the multipolygon): every point in its box is sent to
	// PostGIS.
	unsupported bool
}

type polygon struct {
	thing     int32
	firstRing int32
	nRings    int32
}

type ring struct {
	minX, minY, maxX, maxY float64 // exact bounds of the ring's vertices
	pruneMinX              float64 // minX - pruneMargin
	start, end             uint32  // vertices [start, end)
	y0, scale              float64 // band of y: int((y - y0) * scale)
	bands                  uint32  // 0: scan every segment
	bandOff                uint32
}

// pruneMargin is how far left of a ring a point must be for the ring to
// be skipped. For a ring without degenerate segments, PostGIS's
// arithmetic can count a segment entirely right of the point wrongly only
// when the point is within about 3e-13 degrees of one of its vertices (a
// tie of two rounded products; the argument is in docs/INDEX.md); a
// segment entirely left of the point never counts. 1e-9 leaves more than
// three orders of magnitude.
const pruneMargin = 1e-9

// underflowLimit: a segment whose extent in x or y is nonzero but below
// this may make PostGIS's products underflow to zero, which the pruning
// argument does not cover; its thing is evaluated in full.
const underflowLimit = 1e-280

// Band sizing: rings of at most scanSegments segments are scanned whole;
// longer ones get a band per bandSegments segments.
const (
	scanSegments = 16
	bandSegments = 8
	maxBands     = 1 << 16
)

// Build indexes things (in the order given, which is the order of Lookup's
// answers) as version v. A geometry that is neither a Polygon nor a
// MultiPolygon is an error.
func Build(v Version, things []Thing) (*Index, error) {
	ix := &Index{version: v}
	ix.presize(things, 0, 0, 0, 0)
	for i, t := range things {
		if err := ix.add(t); err != nil {
			return nil, fmt.Errorf("thing %d (id %d): %w", i, t.ID, err)
		}
	}
	ix.finish()
	return ix, nil
}

// finish trims the arrays and builds the cell cover of every polygon.
func (ix *Index) finish() {
	// Copies of exactly the right size: append's spare capacity (up to a
	// quarter of a large slice) would stay allocated for the index's life.
	ix.things = exact(ix.things)
	ix.polys = exact(ix.polys)
	ix.rings = exact(ix.rings)
	ix.coords = exact(ix.coords)
	ix.bandStart = exact(ix.bandStart)
	ix.segs = exact(ix.segs)
	for ti := range ix.things {
		t := &ix.things[ti]
		if t.degenerate || t.unsupported {
			// One entry for the whole thing; Lookup evaluates every polygon.
			b := t.box
			ix.cover.add(b.minX, b.minY, b.maxX, b.maxY, t.firstPoly)
			continue
		}
		for pi := t.firstPoly; pi < t.firstPoly+t.nPolys; pi++ {
			p := &ix.polys[pi]
			if p.nRings == 0 {
				continue
			}
			r := &ix.rings[p.firstRing]
			ix.cover.add(r.pruneMinX, r.minY, r.maxX, r.maxY, pi)
		}
	}
	ix.cover.build()
}

// presize allocates the things, polygons, rings and coordinates of
// things at their final size: growing them by appending copied each
// several times, most of a reload's time for a large collection.
// The counts given are added to things' (Rebuild's copied things).
func (ix *Index) presize(things []Thing, nThings, nPolys, nRings, nCoords int) {
	for _, t := range things {
		switch g := t.Geometry.(type) {
		case *geom.MultiPolygon:
			nPolys += len(g.Endss())
			for _, ends := range g.Endss() {
				nRings += len(ends)
			}
			nCoords += 2 * g.NumCoords()
		case *geom.Polygon:
			nPolys++
			nRings += len(g.Ends())
			nCoords += 2 * g.NumCoords()
		}
	}
	ix.things = make([]thing, 0, nThings+len(things))
	ix.polys = make([]polygon, 0, nPolys)
	ix.rings = make([]ring, 0, nRings)
	ix.coords = make([]float64, 0, nCoords)
}

// exact returns s with no spare capacity, copying it only if it has some.
func exact[S ~[]E, E any](s S) S {
	if cap(s) == len(s) {
		return s
	}
	return slices.Clone(s)
}

func (ix *Index) add(t Thing) error {
	var flat []float64
	var endss [][]int
	var stride int
	switch g := t.Geometry.(type) {
	case *geom.MultiPolygon:
		flat, endss, stride = g.FlatCoords(), g.Endss(), g.Stride()
	case *geom.Polygon:
		flat, endss, stride = g.FlatCoords(), [][]int{g.Ends()}, g.Stride()
	case nil:
		return errors.New("no geometry")
	default:
		return fmt.Errorf("geometry is a %T, not a polygon or multipolygon", t.Geometry)
	}
	if len(ix.polys) > math.MaxInt32-len(endss) {
		return errors.New("too many polygons for one index")
	}
	th := thing{id: t.ID, firstPoly: int32(len(ix.polys)), nPolys: int32(len(endss))}
	minX, minY := math.Inf(1), math.Inf(1)
	maxX, maxY := math.Inf(-1), math.Inf(-1)
	offset := 0
	for _, ends := range endss {
		p := polygon{thing: int32(len(ix.things)), firstRing: int32(len(ix.rings)), nRings: int32(len(ends))}
		if len(ends) == 0 {
			th.unsupported = true
		}
		for _, end := range ends {
			n := (end - offset) / stride
			if n < 1 {
				return errors.New("empty ring")
			}
			start := len(ix.coords) / 2
			if start+n > math.MaxUint32 {
				return errors.New("too many vertices for one index")
			}
			for i := offset; i < end; i += stride {
				x, y := flat[i], flat[i+1]
				if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
					return errors.New("coordinate is not a finite number")
				}
				ix.coords = append(ix.coords, x, y)
				minX, maxX = min(minX, x), max(maxX, x)
				minY, maxY = min(minY, y), max(maxY, y)
			}
			offset = end
			degenerate := ix.addRing(uint32(start), uint32(start+n))
			th.degenerate = th.degenerate || degenerate
			ix.vertices += n
		}
		ix.polys = append(ix.polys, p)
	}
	if th.nPolys == 0 {
		return errors.New("empty geometry")
	}
	th.box = newFloatBox(minX, minY, maxX, maxY)
	ix.things = append(ix.things, th)
	return nil
}

// addRing indexes vertices [start, end) as a ring and reports whether it
// has a degenerate segment.
func (ix *Index) addRing(start, end uint32) bool {
	c := ix.coords
	r := ring{start: start, end: end,
		minX: math.Inf(1), minY: math.Inf(1), maxX: math.Inf(-1), maxY: math.Inf(-1)}
	degenerate := false
	for i := start; i < end; i++ {
		x, y := c[2*i], c[2*i+1]
		r.minX, r.maxX = min(r.minX, x), max(r.maxX, x)
		r.minY, r.maxY = min(r.minY, y), max(r.maxY, y)
		if i+1 < end {
			x2, y2 := c[2*i+2], c[2*i+3]
			dx, dy := x2-x, y2-y
			if x == x2 && y == y2 {
				continue // skipped by both paths
			}
			if float64(float64(dx*dx)+float64(dy*dy)) < tinySquared ||
				(dx != 0 && math.Abs(dx) < underflowLimit) || (dy != 0 && math.Abs(dy) < underflowLimit) {
				degenerate = true
			}
		}
	}
	r.pruneMinX = r.minX - pruneMargin
	segments := int(end-start) - 1
	if segments > scanSegments && r.maxY > r.minY {
		nb := min(max(segments/bandSegments, 2), maxBands)
		r.bands = uint32(nb)
		r.y0 = r.minY
		r.scale = float64(nb) / (r.maxY - r.minY)
		r.bandOff = uint32(len(ix.bandStart))
		// Each segment (but those of length 0, which both paths skip) in
		// every band its y range touches: counted, then filed.
		each := func(file func(b, seg uint32)) {
			for i := start; i+1 < end; i++ {
				y1, y2 := c[2*i+1], c[2*i+3]
				if c[2*i] == c[2*i+2] && y1 == y2 {
					continue
				}
				for b, hi := r.band(min(y1, y2)), r.band(max(y1, y2)); b <= hi; b++ {
					file(b, i)
				}
			}
		}
		offs := make([]uint32, nb+1)
		each(func(b, _ uint32) { offs[b+1]++ })
		offs[0] = uint32(len(ix.segs))
		for b := 1; b <= nb; b++ {
			offs[b] += offs[b-1]
		}
		ix.bandStart = append(ix.bandStart, offs...)
		ix.segs = append(ix.segs, make([]uint32, offs[nb]-offs[0])...)
		fill := slices.Clone(offs[:nb])
		each(func(b, seg uint32) {
			ix.segs[fill[b]] = seg
			fill[b]++
		})
		// Rightmost first: a lookup stops at the first segment entirely
		// left of the point, as every later one is too (and none counts).
		maxX := func(seg uint32) float64 { return max(c[2*seg], c[2*seg+2]) }
		for b := range nb {
			slices.SortFunc(ix.segs[offs[b]:offs[b+1]], func(p, q uint32) int {
				return cmp.Compare(maxX(q), maxX(p))
			})
		}
	}
	ix.rings = append(ix.rings, r)
	return degenerate
}

// band returns the band of y, clamped to the ring's bands. It is
// monotonic in y (each rounded operation is), so a segment whose y range
// holds y is filed under y's band.
func (r *ring) band(y float64) uint32 {
	f := (y - r.y0) * r.scale
	if !(f > 0) {
		return 0
	}
	if f >= float64(r.bands) {
		return r.bands - 1
	}
	return uint32(f)
}

// Version returns the version the index was built as.
func (ix *Index) Version() Version { return ix.version }

// Len returns the number of things indexed.
func (ix *Index) Len() int { return len(ix.things) }

// Vertices returns the number of vertices indexed.
func (ix *Index) Vertices() int { return ix.vertices }

// Bytes estimates the memory the index holds: its arrays and its cell
// cover.
func (ix *Index) Bytes() int {
	b := cap(ix.things)*int(unsafe.Sizeof(thing{})) + cap(ix.polys)*int(unsafe.Sizeof(polygon{})) +
		cap(ix.rings)*int(unsafe.Sizeof(ring{})) + cap(ix.coords)*8 + cap(ix.bandStart)*4 + cap(ix.segs)*4
	return b + ix.cover.bytes()
}

// Lookup appends to dst the ids of the things that contain the point
// (lng, lat), in the order they were built, and reports whether the answer
// is certain. When it is not (a thing whose answer PostGIS itself gives
// differently depending on the statement's plan, or a coordinate that is
// not a finite number), the caller must ask PostGIS.
func (ix *Index) Lookup(dst []int64, lng, lat float64) ([]int64, bool) {
	if math.IsNaN(lng) || math.IsNaN(lat) || math.IsInf(lng, 0) || math.IsInf(lat, 0) {
		return dst, false
	}
	var buf [16]int32
	cands := ix.cover.search(lng, lat, buf[:0])
	if len(cands) == 0 {
		return dst, true
	}
	if len(cands) > 1 {
		slices.Sort(cands)
	}
	certain := true
	for i := 0; i < len(cands); {
		ti := ix.polys[cands[i]].thing
		j := i + 1
		for j < len(cands) && ix.polys[cands[j]].thing == ti {
			j++
		}
		in, sure := ix.thingContains(&ix.things[ti], cands[i:j], lng, lat)
		if !sure {
			certain = false
		} else if in {
			dst = append(dst, ix.things[ti].id)
		}
		i = j
	}
	return dst, certain
}

// thingContains is ST_Contains(thing, point): cands are the thing's
// candidate polygons in order (any others answer -1).
func (ix *Index) thingContains(t *thing, cands []int32, px, py float64) (in, certain bool) {
	if !t.box.contains(px, py) {
		return false, true // short circuit 1
	}
	if t.unsupported {
		return false, false
	}
	if t.degenerate {
		plain := ix.multiPolygon(t, nil, px, py, plainPath) == 1
		cached := ix.multiPolygon(t, nil, px, py, cachedPath) == 1
		return plain, plain == cached
	}
	return ix.multiPolygon(t, cands, px, py, plainPath) == 1, true
}

// multiPolygon is point_in_multipolygon over the polygons cands, or over
// all the thing's polygons (unpruned) when cands is nil: the first polygon
// that does not answer -1 decides.
func (ix *Index) multiPolygon(t *thing, cands []int32, px, py float64, v variant) int {
	if cands == nil {
		for pi := t.firstPoly; pi < t.firstPoly+t.nPolys; pi++ {
			if r := ix.polygon(&ix.polys[pi], px, py, v, false); r != -1 {
				return r
			}
		}
		return -1
	}
	for _, pi := range cands {
		if r := ix.polygon(&ix.polys[pi], px, py, v, true); r != -1 {
			return r
		}
	}
	return -1
}

// polygon is one polygon of point_in_multipolygon: -1 outside, 0 on the
// boundary of its exterior or of a hole, 1 inside.
func (ix *Index) polygon(p *polygon, px, py float64, v variant, prune bool) int {
	if p.nRings == 0 {
		return -1
	}
	rings := ix.rings[p.firstRing : p.firstRing+p.nRings]
	if r := ix.ring(&rings[0], px, py, v, prune); r != 1 {
		return r
	}
	for i := 1; i < len(rings); i++ {
		switch ix.ring(&rings[i], px, py, v, prune) {
		case 1:
			return -1
		case 0:
			return 0
		}
	}
	return 1
}

// ring is point_in_ring: -1 outside, 0 on the ring, 1 inside.
func (ix *Index) ring(r *ring, px, py float64, v variant, prune bool) int {
	// No segment's y range holds py, or every segment is left of the
	// point: no segment counts (see pip.go). Left of the ring by the
	// margin: none counts unless the ring is degenerate (prune is off).
	if py < r.minY || py > r.maxY || px > r.maxX || (prune && px < r.pruneMinX) {
		return -1
	}
	c := ix.coords
	wn := 0
	if r.bands == 0 {
		for i := r.start; i+1 < r.end; i++ {
			if segmentStep(c[2*i], c[2*i+1], c[2*i+2], c[2*i+3], px, py, v, &wn) {
				return 0
			}
		}
	} else {
		b := r.bandOff + r.band(py)
		for _, i := range ix.segs[ix.bandStart[b]:ix.bandStart[b+1]] {
			x1, x2 := c[2*i], c[2*i+2]
			if x1 < px && x2 < px {
				break // this and every later segment is left of the point
			}
			y1, y2 := c[2*i+1], c[2*i+3]
			if (py < y1 && py < y2) || (py > y1 && py > y2) {
				// py is outside the segment's y range: it neither holds
				// the point (isOnSegment's box) nor counts (both of the
				// winding rule's tests compare py with y1 and y2).
				continue
			}
			if segmentStep(x1, y1, x2, y2, px, py, v, &wn) {
				return 0
			}
		}
	}
	if wn == 0 {
		return -1
	}
	return 1
}
