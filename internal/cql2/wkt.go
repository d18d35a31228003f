// The geometry literals of CQL2 text: WKT and BBOX.

package cql2

import (
	"strings"

	"github.com/twpayne/go-geom"

	"github.com/geosearch/search/internal/geo"
)

var geometryKeywords = map[string]bool{"POINT": true, "LINESTRING": true, "POLYGON": true, "MULTIPOINT": true, "MULTILINESTRING": true, "MULTIPOLYGON": true, "BBOX": true}

func isGeometryProperty(s string) bool {
	for _, g := range GeometryProperties {
		if strings.EqualFold(s, g) {
			return true
		}
	}
	return false
}

// geometry reads a WKT literal or BBOX(w, s, e, n).
func (p *parser) geometry() (geom.T, error) {
	t := p.next()
	kw := strings.ToUpper(t.text)
	if _, err := p.expect(tLParen, `"("`); err != nil {
		return nil, err
	}
	var g geom.T
	var err error
	switch kw {
	case "BBOX":
		var v [4]float64
		for i := range v {
			if i > 0 {
				if _, err := p.expect(tComma, `","`); err != nil {
					return nil, err
				}
			}
			if v[i], err = p.numberLiteral(); err != nil {
				return nil, err
			}
		}
		if v[0] > v[2] || v[1] > v[3] {
			return nil, syntaxError(t.pos, "BBOX is west, south, east, north with west <= east and south <= north")
		}
		g = geom.NewPolygonFlat(geom.XY, []float64{v[0], v[1], v[2], v[1], v[2], v[3], v[0], v[3], v[0], v[1]}, []int{10})
	case "POINT":
		var c []float64
		if c, err = p.position(); err == nil {
			g = geom.NewPointFlat(geom.XY, c)
		}
	case "LINESTRING":
		var cs []geom.Coord
		if cs, err = p.positions(); err == nil {
			g, err = geom.NewLineString(geom.XY).SetCoords(cs)
		}
	case "POLYGON":
		var rs [][]geom.Coord
		if rs, err = p.rings(); err == nil {
			g, err = geom.NewPolygon(geom.XY).SetCoords(rs)
		}
	case "MULTIPOINT":
		var cs []geom.Coord
		if cs, err = p.multiPoint(); err == nil {
			g, err = geom.NewMultiPoint(geom.XY).SetCoords(cs)
		}
	case "MULTILINESTRING":
		var rs [][]geom.Coord
		if rs, err = p.rings(); err == nil {
			g, err = geom.NewMultiLineString(geom.XY).SetCoords(rs)
		}
	case "MULTIPOLYGON":
		var ps [][][]geom.Coord
		for {
			if _, err := p.expect(tLParen, `"(" and a polygon`); err != nil {
				return nil, err
			}
			rs, err := p.rings()
			if err != nil {
				return nil, err
			}
			p.next() // the polygon's ")", which rings left
			ps = append(ps, rs)
			if p.peek().kind == tComma {
				p.next()
				continue
			}
			break
		}
		g, err = geom.NewMultiPolygon(geom.XY).SetCoords(ps)
	default:
		return nil, p.fail(t, "a geometry literal (POINT, LINESTRING, POLYGON, MULTIPOINT, MULTILINESTRING, MULTIPOLYGON, BBOX)")
	}
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tRParen, `")"`); err != nil {
		return nil, err
	}
	return g, nil
}

// position reads "x y".
func (p *parser) position() ([]float64, error) {
	x, err := p.numberLiteral()
	if err != nil {
		return nil, err
	}
	y, err := p.numberLiteral()
	if err != nil {
		return nil, err
	}
	return []float64{x, y}, nil
}

// positions reads "x y, x y, ..." up to (not including) the closing ")".
func (p *parser) positions() ([]geom.Coord, error) {
	var out []geom.Coord
	for {
		c, err := p.position()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		if len(out) > geo.MaxAreaVertices {
			return nil, geo.Errorf(geo.Invalid, "a geometry literal has more than %d positions", geo.MaxAreaVertices)
		}
		if p.peek().kind != tComma {
			return out, nil
		}
		p.next()
	}
}

// rings reads "(x y, ...), (x y, ...)" and the ")" that closes the list.
func (p *parser) rings() ([][]geom.Coord, error) {
	var out [][]geom.Coord
	for {
		if _, err := p.expect(tLParen, `"(" and positions`); err != nil {
			return nil, err
		}
		r, err := p.positions()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen, `")"`); err != nil {
			return nil, err
		}
		out = append(out, r)
		if p.peek().kind != tComma {
			break
		}
		p.next()
	}
	if _, err := p.expect(tRParen, `")"`); err != nil {
		return nil, err
	}
	p.i-- // the caller reads the closing ")"
	return out, nil
}

// multiPoint reads "(x y), (x y)" or "x y, x y".
func (p *parser) multiPoint() ([]geom.Coord, error) {
	if p.peek().kind != tLParen {
		return p.positions()
	}
	var out []geom.Coord
	for {
		if _, err := p.expect(tLParen, `"("`); err != nil {
			return nil, err
		}
		c, err := p.position()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen, `")"`); err != nil {
			return nil, err
		}
		out = append(out, c)
		if p.peek().kind != tComma {
			return out, nil
		}
		p.next()
	}
}
