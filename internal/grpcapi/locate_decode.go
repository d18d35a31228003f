package grpcapi

import (
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// The field numbers decodeLocatePoints reads (search.proto).
const (
	locateRequestPoints protowire.Number = 4 // LocateRequest.points
	locatePointID       protowire.Number = 1 // LocatePoint.id
	locatePointPoint    protowire.Number = 2 // LocatePoint.point
	pointLat            protowire.Number = 1 // Point.lat
	pointLng            protowire.Number = 2 // Point.lng
)

// decodeLocatePoints decodes b into m when b is a LocateRequest of the
// bulk form in its plain encoding: field points only, each LocatePoint
// with at most one id (valid UTF-8) and one point, each Point with at
// most one lat and one lng. It allocates the message's points in three
// arrays and its ids in one string, where proto.Unmarshal allocates three
// times per point: a Locate stream's requests cost less to read than the
// points' lookups. For anything else (options, id or point beside points,
// a field given twice, unknown fields, invalid UTF-8, a malformed
// message) it returns false with m untouched, and the caller decodes b
// with proto.Unmarshal, which gives the same message or says what is
// wrong (TestDecodeLocatePointsAsProto).
func decodeLocatePoints(b []byte, m *searchv1.LocateRequest) bool {
	n, idBytes, ok := scanLocatePoints(b)
	if !ok || n == 0 {
		return false
	}
	lps := make([]searchv1.LocatePoint, n)
	ptrs := make([]*searchv1.LocatePoint, n)
	pts := make([]searchv1.Point, n)
	ids := make([]byte, 0, idBytes)
	type span struct{ from, to int }
	spans := make([]span, n)
	i := 0
	for len(b) > 0 {
		_, _, tn := protowire.ConsumeTag(b)
		v, vn := protowire.ConsumeBytes(b[tn:])
		b = b[tn+vn:]
		lp := &lps[i]
		ptrs[i] = lp
		for len(v) > 0 {
			num, _, tn := protowire.ConsumeTag(v)
			f, fn := protowire.ConsumeBytes(v[tn:])
			v = v[tn+fn:]
			if num == locatePointID {
				spans[i] = span{len(ids), len(ids) + len(f)}
				ids = append(ids, f...)
				continue
			}
			p := &pts[i]
			lp.Point = p
			for len(f) > 0 {
				num, _, tn := protowire.ConsumeTag(f)
				x, xn := protowire.ConsumeFixed64(f[tn:])
				f = f[tn+xn:]
				if num == pointLat {
					p.Lat = math.Float64frombits(x)
				} else {
					p.Lng = math.Float64frombits(x)
				}
			}
		}
		i++
	}
	proto.Reset(m)
	all := string(ids)
	for i, s := range spans {
		lps[i].Id = all[s.from:s.to]
	}
	m.Points = ptrs
	return true
}

// scanLocatePoints checks that b is what decodeLocatePoints decodes and
// counts its points and their ids' bytes.
func scanLocatePoints(b []byte) (points, idBytes int, ok bool) {
	for len(b) > 0 {
		num, typ, tn := protowire.ConsumeTag(b)
		if tn < 0 || num != locateRequestPoints || typ != protowire.BytesType {
			return 0, 0, false
		}
		v, vn := protowire.ConsumeBytes(b[tn:])
		if vn < 0 {
			return 0, 0, false
		}
		b = b[tn+vn:]
		var seenID, seenPoint bool
		for len(v) > 0 {
			num, typ, tn := protowire.ConsumeTag(v)
			if tn < 0 || typ != protowire.BytesType {
				return 0, 0, false
			}
			f, fn := protowire.ConsumeBytes(v[tn:])
			if fn < 0 {
				return 0, 0, false
			}
			v = v[tn+fn:]
			switch {
			case num == locatePointID && !seenID && utf8.Valid(f):
				seenID = true
				idBytes += len(f)
			case num == locatePointPoint && !seenPoint && scanPoint(f):
				seenPoint = true
			default:
				return 0, 0, false
			}
		}
		points++
	}
	return points, idBytes, true
}

// scanPoint reports whether b is a Point with at most one lat and one lng.
func scanPoint(b []byte) bool {
	var seenLat, seenLng bool
	for len(b) > 0 {
		num, typ, tn := protowire.ConsumeTag(b)
		if tn < 0 || typ != protowire.Fixed64Type {
			return false
		}
		switch {
		case num == pointLat && !seenLat:
			seenLat = true
		case num == pointLng && !seenLng:
			seenLng = true
		default:
			return false
		}
		_, xn := protowire.ConsumeFixed64(b[tn:])
		if xn < 0 {
			return false
		}
		b = b[tn+xn:]
	}
	return true
}
