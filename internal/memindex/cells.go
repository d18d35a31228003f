package memindex

import (
	"math"

	"github.com/golang/geo/r1"
	"github.com/golang/geo/s1"
	"github.com/golang/geo/s2"
)

// cellCover finds the boxes that may hold a point: each box is covered by
// at most coverCells S2 cells (golang/geo's RegionCoverer), the cells go
// into an s2.CellIndex (sorted leaf ranges), and a lookup binary-searches
// the point's leaf cell, walks the cells that contain it, and keeps the
// boxes that hold the point. A cover is a superset of its box, so no box
// that holds the point is missed; the box test removes the rest.
//
// Chosen over an R-tree by measurement and by provenance (docs/INDEX.md):
// the same CPU per lookup on the countries (about 240 ns) and 1.3x an
// R-tree's on the 100k grid, from the S2 library the ecosystem keeps.
type cellCover struct {
	ix     s2.CellIndex
	boxes  []floatBox // by label
	values []int32    // by label
	cells  int        // (cell, label) pairs added
	// held has a bit per degree square of longitude and latitude
	// (degreeSquare), set where some box touches the square: a point in a
	// square without its bit has no box to hold it, and search answers it
	// without the cell index (about half of random points over the globe
	// on the 1:10m countries, which leaves the S2 search and its leaf cell,
	// a third of a lookup, to the other half).
	held []uint64
}

// The squares of cellCover.held: 360 by 180.
const (
	squaresX = 360
	squaresY = 180
)

// degreeSquare returns the square of (lng, lat), clamped to the grid. It is
// monotonic in each coordinate (each rounded operation is), so a box marks
// the squares from its low corner's to its high corner's and a point the box
// holds falls in one of them.
func degreeSquare(lng, lat float64) int {
	x := min(max(int(math.Floor(lng+180)), 0), squaresX-1)
	y := min(max(int(math.Floor(lat+90)), 0), squaresY-1)
	return y*squaresX + x
}

const (
	// coverCells bounds the cells per box: more is a tighter cover and a
	// bigger index.
	coverCells = 8
	// coverPad widens each box before it is covered, by far more than the
	// rounding of a point's conversion to a leaf cell (about 1e-15
	// radians), so a point on a box's edge always lands in its cover.
	coverPad = 1e-7
)

var coverer = &s2.RegionCoverer{MinLevel: 0, MaxLevel: 20, LevelMod: 1, MaxCells: coverCells}

func (c *cellCover) add(minX, minY, maxX, maxY float64, v int32) {
	label := int32(len(c.values))
	c.boxes = append(c.boxes, floatBox{minX: minX, minY: minY, maxX: maxX, maxY: maxY})
	c.values = append(c.values, v)
	if c.held == nil {
		c.held = make([]uint64, (squaresX*squaresY+63)/64)
	}
	lo, hi := degreeSquare(minX, minY), degreeSquare(maxX, maxY)
	for y := lo / squaresX; y <= hi/squaresX; y++ {
		for x := lo % squaresX; x <= hi%squaresX; x++ {
			sq := y*squaresX + x
			c.held[sq/64] |= 1 << (sq % 64)
		}
	}
	rad := func(d float64) float64 { return d * math.Pi / 180 }
	rect := s2.Rect{
		Lat: r1.Interval{Lo: rad(max(minY-coverPad, -90)), Hi: rad(min(maxY+coverPad, 90))},
		Lng: s1.IntervalFromEndpoints(rad(max(minX-coverPad, -180)), rad(min(maxX+coverPad, 180))),
	}
	for _, id := range coverer.FastCovering(rect) {
		c.ix.Add(id, label)
		c.cells++
	}
}

// build sorts the cells; search may run concurrently after it.
func (c *cellCover) build() { c.ix.Build() }

// search appends the values of the boxes that hold (lng, lat).
func (c *cellCover) search(lng, lat float64, dst []int32) []int32 {
	if sq := degreeSquare(lng, lat); c.held == nil || c.held[sq/64]&(1<<(sq%64)) == 0 {
		return dst // no box touches the point's square
	}
	leaf := s2.CellIDFromLatLng(s2.LatLngFromDegrees(lat, lng))
	r := s2.NewCellIndexRangeIterator(&c.ix)
	r.Seek(leaf)
	it := s2.NewCellIndexContentsIterator(&c.ix)
	for it.StartUnion(r); !it.Done(); it.Next() {
		l := it.Label()
		b := &c.boxes[l]
		if lng >= b.minX && lng <= b.maxX && lat >= b.minY && lat <= b.maxY {
			dst = append(dst, c.values[l])
		}
	}
	return dst
}

// bytes estimates the memory held: each box and value, and per cell a
// node of the cell tree and about one leaf range (16 bytes each).
func (c *cellCover) bytes() int {
	return cap(c.boxes)*32 + cap(c.values)*4 + c.cells*32 + cap(c.held)*8
}
