package geo

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/twpayne/go-geom"
)

// How rings that cross the antimeridian are read (RFC 7946, section 3.1.9).
//
// GeoJSON positions are longitude and latitude, and an edge is the straight
// line between its ends in those coordinates. A ring edge whose ends are
// more than 180 degrees of longitude apart, such as [178.6, 69.4] ->
// [-180, 68.96] in Natural Earth's Russia, is not meant to run the long
// way round the world through Greenwich: it crosses the antimeridian, the
// short way. RFC 7946 asks writers to cut such geometries at +-180, and
// many datasets (Natural Earth as packaged for d3, which reads edges on the
// sphere) do not. Read flat, such a ring encloses a band around the whole
// globe and the polygon answers for the Arctic Ocean.
//
// So on input (an imported feature or a search area) every edge spanning
// more than 180 degrees of longitude is read the short way across +-180:
//
//   - A ring that crosses and comes back (an even number of times: Russia's
//     Chukotka, Fiji) is unwrapped into one continuous ring whose
//     longitudes run past +-180 (say from 169 to 190), which the store then
//     cuts at +-180 and folds back into [-180, 180] (ST_WrapX), so the
//     polygon is stored as valid pieces on both sides.
//   - A ring that crosses once for good (an odd number of times) goes round
//     a pole (Antarctica). Its interior is the side of the pole nearer to
//     the ring: the pole on the side of the equator where the ring's
//     vertices lie on average. It is closed along that pole from +180 to
//     -180. Winding order cannot decide this: RFC 7946 wants exterior rings
//     counterclockwise, d3's data has them clockwise, and RFC 7946 tells
//     readers not to reject either.
//   - When several rings of one polygon go round the same pole (Natural
//     Earth 1:50m cuts a small cap out of Antarctica with a ring at
//     -89.999), the one reaching furthest from the pole is the outer ring
//     and the others are its holes: the polygon is the band between them.
//
// A ring that goes round a pole more than once is refused.

// antimeridianRepair says what was done to one ring, for Feature.Repairs.
func antimeridianRepair(pi, ri int, pole float64) string {
	switch {
	case pole > 0:
		return fmt.Sprintf("ring %d of polygon %d goes round the north pole across the antimeridian: closed along the pole and cut at +-180 (RFC 7946 section 3.1.9)", ri, pi)
	case pole < 0:
		return fmt.Sprintf("ring %d of polygon %d goes round the south pole across the antimeridian: closed along the pole and cut at +-180 (RFC 7946 section 3.1.9)", ri, pi)
	default:
		return fmt.Sprintf("ring %d of polygon %d crosses the antimeridian: its edges longer than 180 degrees of longitude were read the short way across +-180 and the polygon cut there (RFC 7946 section 3.1.9)", ri, pi)
	}
}

// unwrapAntimeridian rewrites, in place, the closed XY rings of polygons
// that cross the antimeridian as described above, and returns one
// description per rewritten ring. Afterwards a ring's longitudes may lie
// outside [-180, 180] (by less than 360 degrees); CrossesAntimeridian tells
// whether the store must fold the result back. Rings that do not cross are
// left untouched, bit for bit.
func unwrapAntimeridian(polygons [][][]geom.Coord) ([]string, error) {
	var notes []string
	for pi, rings := range polygons {
		poleRings := map[float64][]int{} // pole -> indexes of the rings going round it
		for ri, ring := range rings {
			out, pole, crossed, err := unwrapRing(ring)
			if err != nil {
				return nil, fmt.Errorf("polygon %d ring %d: %w", pi, ri, err)
			}
			if !crossed {
				continue
			}
			rings[ri] = out
			notes = append(notes, antimeridianRepair(pi, ri, pole))
			if pole != 0 {
				poleRings[pole] = append(poleRings[pole], ri)
			}
		}
		// Of the rings round one pole, the one reaching furthest from it
		// bounds the polygon; the others are holes (ST_MakeValid in the
		// store takes them out, as they share the pole's edge).
		for pole, idx := range poleRings {
			if len(idx) < 2 {
				continue
			}
			far := slices.MaxFunc(idx, func(a, b int) int {
				return cmp.Compare(reach(rings[a], pole), reach(rings[b], pole))
			})
			rings[0], rings[far] = rings[far], rings[0]
		}
		alignHoles(rings)
	}
	return notes, nil
}

// reach is how far from pole the ring gets, in degrees of latitude.
func reach(ring []geom.Coord, pole float64) float64 {
	d := 0.0
	for _, c := range ring {
		d = max(d, math.Abs(pole-c[1]))
	}
	return d
}

// alignHoles shifts each hole of a polygon by a whole number of turns (360
// degrees) so that it lies in the same stretch of longitudes as the outer
// ring: a hole near -179 in an outer ring unwrapped to [169, 190] moves to
// +181.
func alignHoles(rings [][]geom.Coord) {
	if len(rings) < 2 {
		return
	}
	outer := midLongitude(rings[0])
	for _, hole := range rings[1:] {
		turns := math.Round((outer - midLongitude(hole)) / 360)
		if turns == 0 {
			continue
		}
		for i := range hole {
			hole[i][0] += 360 * turns
		}
	}
}

func midLongitude(ring []geom.Coord) float64 {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range ring {
		lo, hi = min(lo, c[0]), max(hi, c[0])
	}
	return (lo + hi) / 2
}

// unwrapRing reads one closed ring's long edges the short way. It returns
// the rewritten ring and whether it crossed at all; pole is -90 or 90 for
// a ring that goes round that pole, and 0 otherwise.
func unwrapRing(ring []geom.Coord) (out []geom.Coord, pole float64, crossed bool, err error) {
	// turn[i] is how many times the ring has gone east (+1) or west (-1)
	// across the antimeridian before position i.
	turn := make([]int, len(ring))
	first := -1 // the first edge that crosses: from first to first+1
	for i := 1; i < len(ring); i++ {
		turn[i] = turn[i-1]
		switch d := ring[i][0] - ring[i-1][0]; {
		case d > 180:
			turn[i]-- // east by more than 180 is west across -180
		case d < -180:
			turn[i]++
		default:
			continue
		}
		if first < 0 {
			first = i - 1
		}
	}
	if first < 0 {
		return ring, 0, false, nil
	}
	switch turns := turn[len(ring)-1]; turns {
	case 0:
		return unwrapCrossing(ring, turn), 0, true, nil
	case 1, -1:
		pole = -90.0
		if meanLatitude(ring) >= 0 {
			pole = 90
		}
		return closeAlongPole(ring, first, turns, pole), pole, true, nil
	default:
		return nil, 0, false, fmt.Errorf("the ring goes round the pole %d times across the antimeridian", abs(turns))
	}
}

// unwrapCrossing returns ring with each position moved by its turns, in
// the frame where most positions keep their own longitude (those are not
// touched, so they keep their exact values).
func unwrapCrossing(ring []geom.Coord, turn []int) []geom.Coord {
	count := map[int]int{}
	for _, t := range turn {
		count[t]++
	}
	frame, most := 0, -1
	for t, n := range count {
		if n > most || n == most && t < frame {
			frame, most = t, n
		}
	}
	out := make([]geom.Coord, 0, len(ring))
	for i, c := range ring {
		x := c[0]
		if t := turn[i] - frame; t != 0 {
			x += 360 * float64(t)
		}
		out = appendDistinct(out, geom.Coord{x, c[1]})
	}
	return out
}

// closeAlongPole rewrites a ring that goes round a pole (turns is +1 going
// east, -1 going west) into a ring that starts where its first crossing
// edge meets the antimeridian, follows the ring round to the other side,
// and comes back along the pole.
func closeAlongPole(ring []geom.Coord, first, turns int, pole float64) []geom.Coord {
	a, b := ring[first], ring[first+1]
	// The crossing edge, read the short way, meets the antimeridian at
	// (start, y) on b's side and (end, y) on a's.
	start, end := -180.0, 180.0
	if turns < 0 {
		start, end = 180, -180
	}
	bx := b[0] + 360*float64(turns) // b seen from a's side
	y := a[1]
	if bx != a[0] {
		y = a[1] + (end-a[0])/(bx-a[0])*(b[1]-a[1])
	}
	n := len(ring) - 1 // without the closing position
	out := make([]geom.Coord, 0, n+5)
	out = append(out, geom.Coord{start, y})
	shift := 0.0
	for k := 1; k <= n; k++ {
		i := (first + k) % n
		if k > 1 {
			// Later crossings (a ring that wiggles across and back) keep
			// the ring continuous; the store folds what runs past +-180.
			prev := ring[(first+k-1)%n]
			switch d := ring[i][0] - prev[0]; {
			case d > 180:
				shift -= 360
			case d < -180:
				shift += 360
			}
		}
		out = appendDistinct(out, geom.Coord{ring[i][0] + shift, ring[i][1]})
	}
	return appendDistinct(appendDistinct(appendDistinct(appendDistinct(out,
		geom.Coord{end, y}), geom.Coord{end, pole}), geom.Coord{start, pole}), geom.Coord{start, y})
}

func appendDistinct(ring []geom.Coord, c geom.Coord) []geom.Coord {
	if n := len(ring); n > 0 && ring[n-1][0] == c[0] && ring[n-1][1] == c[1] {
		return ring
	}
	return append(ring, c)
}

func meanLatitude(ring []geom.Coord) float64 {
	s := 0.0
	for _, c := range ring {
		s += c[1]
	}
	return s / float64(len(ring))
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// CrossesAntimeridian reports whether g has longitudes outside [-180, 180]:
// rings that DecodeFeature or DecodeArea unwrapped across the antimeridian,
// which the store cuts there and folds back.
func CrossesAntimeridian(g geom.T) bool {
	b := g.Bounds()
	return b.Min(0) < -180 || b.Max(0) > 180
}
