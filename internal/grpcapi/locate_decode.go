package grpcapi

import (
	"encoding/binary"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// The tags decodeLocatePoints reads (search.proto): field number << 3 |
// wire type, each one byte.
const (
	tagRequestPoints = 4<<3 | 2 // LocateRequest.points
	tagPointID       = 1<<3 | 2 // LocatePoint.id
	tagPointPoint    = 2<<3 | 2 // LocatePoint.point
	tagLat           = 1<<3 | 1 // Point.lat
	tagLng           = 2<<3 | 1 // Point.lng
)

// decodeLocatePoints decodes b into m when b is a LocateRequest of the
// bulk form in its plain encoding: field points only, each LocatePoint
// with at most one id (valid UTF-8) and one point, each Point with at
// most one lat and one lng, every tag in one byte. It allocates the
// message's points in three arrays and its ids in one string, where
// proto.Unmarshal allocates three times per point: a Locate stream's
// requests cost less to read than the points' lookups. For anything else
// (options, id or point beside points, a field given twice, unknown
// fields, invalid UTF-8, a malformed message) it returns false with m
// untouched, and the caller decodes b with proto.Unmarshal, which gives
// the same message or says what is wrong (TestDecodeLocatePointsAsProto).
func decodeLocatePoints(b []byte, m *searchv1.LocateRequest) bool {
	n := 0
	for rest := b; len(rest) > 0; n++ {
		var ok bool
		if _, rest, ok = field(rest, tagRequestPoints); !ok {
			return false
		}
	}
	if n == 0 {
		return false
	}
	lps := make([]searchv1.LocatePoint, n)
	ptrs := make([]*searchv1.LocatePoint, n)
	pts := make([]searchv1.Point, n)
	ids := make([]byte, 0, len(b))
	ends := make([]int, n) // ids[ends[i-1]:ends[i]] is point i's id
	for i := range n {
		v, next, _ := field(b, tagRequestPoints)
		b = next
		ptrs[i] = &lps[i]
		var seenID, seenPoint bool
		for len(v) > 0 {
			switch {
			case v[0] == tagPointID && !seenID:
				id, next, ok := field(v, tagPointID)
				if !ok || !utf8.Valid(id) {
					return false
				}
				ids, v, seenID = append(ids, id...), next, true
			case v[0] == tagPointPoint && !seenPoint:
				p, next, ok := field(v, tagPointPoint)
				if !ok || !decodePoint(p, &pts[i]) {
					return false
				}
				lps[i].Point, v, seenPoint = &pts[i], next, true
			default:
				return false
			}
		}
		ends[i] = len(ids)
	}
	proto.Reset(m)
	all := string(ids)
	from := 0
	for i, to := range ends {
		lps[i].Id = all[from:to]
		from = to
	}
	m.Points = ptrs
	return true
}

// field reads a length-delimited field with the one-byte tag tag at the
// start of b: its value and what follows it.
func field(b []byte, tag byte) (v, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag {
		return nil, nil, false
	}
	n, w := uint64(b[1]), 1
	if n >= 0x80 {
		if n, w = protowire.ConsumeVarint(b[1:]); w < 0 {
			return nil, nil, false
		}
	}
	if n > uint64(len(b)-1-w) {
		return nil, nil, false
	}
	end := 1 + w + int(n)
	return b[1+w : end], b[end:], true
}

// decodePoint decodes b into p when it is a Point with at most one lat and
// one lng.
func decodePoint(b []byte, p *searchv1.Point) bool {
	var seenLat, seenLng bool
	for len(b) > 0 {
		if len(b) < 9 {
			return false
		}
		x := math.Float64frombits(binary.LittleEndian.Uint64(b[1:9]))
		switch {
		case b[0] == tagLat && !seenLat:
			p.Lat, seenLat = x, true
		case b[0] == tagLng && !seenLng:
			p.Lng, seenLng = x, true
		default:
			return false
		}
		b = b[9:]
	}
	return true
}
