package memindex

import "math"

// The point-in-polygon arithmetic of PostGIS 3.3 (postgresql-15-postgis-3
// 3.3.2 on Debian 12), which ST_Contains(polygon, point) takes instead of
// GEOS: lwgeom_geos.c contains() returns false when the point is outside
// the polygon's stored (float) bounding box, and otherwise asks
// pip_short_circuit() for -1 (outside), 0 (boundary) or 1 (inside);
// contained is 1 only. pip_short_circuit() runs point_in_multipolygon()
// (lwgeom_functions_analytic.c) on the geometry, or, from the second
// consecutive call with the same geometry in a statement, the cached
// point_in_multipolygon_rtree() over a y-interval tree of each ring's
// segments. Both evaluate Dan Sunday's winding number with
//
//	side = (x2-x1)*(py-y1) - (px-x1)*(y2-y1)
//
// in double precision, a segment with side == 0 and the point inside the
// segment's box being the boundary. They differ in one thing: the plain
// path skips a segment whose two ends are equal, the cached path also one
// whose squared length is below 1e-12*1e-12. Both were checked against the
// disassembly of the installed postgis-3.so (no fused multiply-add; the
// compiler's rewrite of side as (x2-x1)*(py-y1) + (px-x1)*(y1-y2) gives the
// same double, since IEEE negation and subtraction are exact mirrors).
//
// Every product below is wrapped in float64() so that no Go compiler fuses
// it into a multiply-add (the Go spec allows fusion otherwise), which would
// round differently from PostGIS.

// tinySquared is the cached path's limit on a segment's squared length:
// 1e-12*1e-12 computed in doubles, as the C expression is.
var tinySquared = func() float64 { e := 1e-12; return float64(e * e) }()

// variant selects which of PostGIS's two code paths to reproduce.
type variant uint8

const (
	plainPath  variant = iota // point_in_multipolygon: skips only zero-length segments
	cachedPath                // point_in_multipolygon_rtree: also skips segments shorter than 1e-12
)

// segmentStep is one iteration of PostGIS's point_in_ring loop for the
// segment (x1,y1)-(x2,y2). It reports whether the point lies on the
// segment (the ring answers 0 at once) and otherwise adds the segment's
// contribution to *wn.
func segmentStep(x1, y1, x2, y2, px, py float64, v variant, wn *int) bool {
	if v == cachedPath {
		dx, dy := x2-x1, y2-y1
		if float64(float64(dx*dx)+float64(dy*dy)) < tinySquared {
			return false
		}
	} else if x1 == x2 && y1 == y2 {
		return false
	}
	side := float64((x2-x1)*(py-y1)) - float64((px-x1)*(y2-y1))
	if side == 0 {
		// isOnSegment: inside the segment's box, bounds included.
		minX, maxX := x1, x2
		if x1 > x2 {
			minX, maxX = x2, x1
		}
		minY, maxY := y1, y2
		if y1 > y2 {
			minY, maxY = y2, y1
		}
		if !(px > maxX || px < minX || py > maxY || py < minY) {
			return true
		}
	}
	if y1 <= py && py < y2 && side > 0 {
		*wn++
	} else if y2 <= py && py < y1 && side < 0 {
		*wn--
	}
	return false
}

// floatBox is PostGIS's serialized bounding box: each double bound rounded
// outward to a float (gbox_float_round: next_float_down, next_float_up),
// then read back as doubles.
type floatBox struct{ minX, minY, maxX, maxY float64 }

func newFloatBox(minX, minY, maxX, maxY float64) floatBox {
	return floatBox{
		minX: float64(nextFloatDown(minX)), minY: float64(nextFloatDown(minY)),
		maxX: float64(nextFloatUp(maxX)), maxY: float64(nextFloatUp(maxY)),
	}
}

// contains is gbox_contains_2d(box, point box): the point is not outside.
func (b floatBox) contains(px, py float64) bool {
	return !(px < b.minX || px > b.maxX || py < b.minY || py > b.maxY)
}

func nextFloatDown(d float64) float32 {
	if d > math.MaxFloat32 {
		return math.MaxFloat32
	}
	if d <= -math.MaxFloat32 {
		return -math.MaxFloat32
	}
	f := float32(d)
	if float64(f) <= d {
		return f
	}
	return math.Nextafter32(f, -math.MaxFloat32)
}

func nextFloatUp(d float64) float32 {
	if d >= math.MaxFloat32 {
		return math.MaxFloat32
	}
	if d < -math.MaxFloat32 {
		return -math.MaxFloat32
	}
	f := float32(d)
	if float64(f) >= d {
		return f
	}
	return math.Nextafter32(f, math.MaxFloat32)
}
