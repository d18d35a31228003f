package geotest

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// MVTLayer is one layer of a decoded Mapbox Vector Tile (spec 2.1).
type MVTLayer struct {
	Name     string
	Extent   int
	Features []MVTFeature
}

// MVTFeature is one feature of a layer: its id, attributes, geometry type
// (1 point, 2 line, 3 polygon) and its rings (for polygons) in tile units.
type MVTFeature struct {
	ID    uint64
	Attrs map[string]any
	Type  int
	Rings [][][2]int
}

// Covers reports whether the feature's polygons cover the point (x, y) in
// tile units, by the even-odd rule over all its rings (the rule a browser
// fills them with): a ring of the wrong winding shows up as a hole filled
// or a fill missing.
func (f MVTFeature) Covers(x, y float64) bool {
	if f.Type != 3 {
		return false
	}
	in := false
	for _, r := range f.Rings {
		for i, j := 0, len(r)-1; i < len(r); j, i = i, i+1 {
			xi, yi := float64(r[i][0]), float64(r[i][1])
			xj, yj := float64(r[j][0]), float64(r[j][1])
			if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
				in = !in
			}
		}
	}
	return in
}

// TileUnits returns where (lng, lat) falls in tile z/x/y of Web Mercator,
// in units of a tile of the given extent (within [0, extent) when the
// point is in the tile).
func TileUnits(z, x, y, extent int, lng, lat float64) (float64, float64) {
	n := math.Exp2(float64(z))
	fx := (lng + 180) / 360 * n
	phi := lat * math.Pi / 180
	fy := (1 - math.Log(math.Tan(phi)+1/math.Cos(phi))/math.Pi) / 2 * n
	return (fx - float64(x)) * float64(extent), (fy - float64(y)) * float64(extent)
}

// DecodeMVT decodes a vector tile, enough to check what a server drew.
func DecodeMVT(b []byte) ([]MVTLayer, error) {
	var layers []MVTLayer
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 3 || typ != protowire.BytesType {
			return nil
		}
		l, err := decodeLayer(v)
		layers = append(layers, l)
		return err
	})
	return layers, err
}

func decodeLayer(b []byte) (MVTLayer, error) {
	l := MVTLayer{Extent: 4096}
	var keys []string
	var values []any
	var raw [][]byte
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch num {
		case 1:
			l.Name = string(v)
		case 2:
			raw = append(raw, v)
		case 3:
			keys = append(keys, string(v))
		case 4:
			val, err := decodeValue(v)
			values = append(values, val)
			return err
		case 5:
			l.Extent = int(n)
		}
		return nil
	})
	if err != nil {
		return l, err
	}
	for _, fb := range raw {
		f := MVTFeature{Attrs: map[string]any{}}
		var tags []uint64
		var geometry []uint64
		err := fields(fb, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
			switch num {
			case 1:
				f.ID = n
			case 2:
				tags = packed(v)
			case 3:
				f.Type = int(n)
			case 4:
				geometry = packed(v)
			}
			return nil
		})
		if err != nil {
			return l, err
		}
		for i := 0; i+1 < len(tags); i += 2 {
			if int(tags[i]) >= len(keys) || int(tags[i+1]) >= len(values) {
				return l, fmt.Errorf("feature %d: tag out of range", f.ID)
			}
			f.Attrs[keys[tags[i]]] = values[tags[i+1]]
		}
		f.Rings = decodeGeometry(geometry)
		l.Features = append(l.Features, f)
	}
	return l, nil
}

func decodeValue(b []byte) (any, error) {
	var out any
	err := fields(b, func(num protowire.Number, _ protowire.Type, v []byte, n uint64) error {
		switch num {
		case 1:
			out = string(v)
		case 2:
			out = float64(math.Float32frombits(uint32(n)))
		case 3:
			out = math.Float64frombits(n)
		case 4:
			out = float64(int64(n))
		case 5:
			out = float64(n)
		case 6:
			out = float64(protowire.DecodeZigZag(n))
		case 7:
			out = n != 0
		}
		return nil
	})
	return out, err
}

// decodeGeometry turns the command stream into rings (or lines, or point
// groups), one per MoveTo.
func decodeGeometry(cmds []uint64) [][][2]int {
	var rings [][][2]int
	x, y := 0, 0
	for i := 0; i < len(cmds); {
		id, count := cmds[i]&7, int(cmds[i]>>3)
		i++
		switch id {
		case 1, 2:
			for range count {
				if i+1 >= len(cmds) {
					return rings
				}
				x += int(protowire.DecodeZigZag(cmds[i]))
				y += int(protowire.DecodeZigZag(cmds[i+1]))
				i += 2
				if id == 1 {
					rings = append(rings, nil)
				}
				if len(rings) > 0 {
					rings[len(rings)-1] = append(rings[len(rings)-1], [2]int{x, y})
				}
			}
		case 7:
		}
	}
	return rings
}

func packed(b []byte) []uint64 {
	var out []uint64
	for len(b) > 0 {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return out
		}
		out = append(out, v)
		b = b[n:]
	}
	return out
}

// fields calls fn for each field of a protobuf message: bytes fields get v,
// varint and fixed fields n.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var val uint64
		switch typ {
		case protowire.VarintType:
			val, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var u uint32
			u, n = protowire.ConsumeFixed32(b)
			val = uint64(u)
		case protowire.Fixed64Type:
			val, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, val); err != nil {
			return err
		}
	}
	return nil
}
