package grpcapi

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// TestDecodeLocatePointsAsProto: for every message, decodeLocatePoints
// either declines or gives exactly what proto.Unmarshal gives; it takes the
// bulk form as clients send it (ids empty or not, a point with lat or lng
// zero, an empty point, no point), and declines everything else, the
// messages proto.Unmarshal rejects included.
func TestDecodeLocatePointsAsProto(t *testing.T) {
	t.Parallel()
	lp := func(id string, p *searchv1.Point) *searchv1.LocatePoint {
		return &searchv1.LocatePoint{Id: id, Point: p}
	}
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	taken := map[string][]byte{
		"points": marshal(&searchv1.LocateRequest{Points: []*searchv1.LocatePoint{
			lp("a", &searchv1.Point{Lat: 1.5, Lng: -2.25}), lp("", &searchv1.Point{Lat: 0, Lng: 3}),
			lp("ü-é", &searchv1.Point{Lat: -90, Lng: 0}), lp("no point", nil), lp("empty point", &searchv1.Point{}),
			lp("", nil), lp("neg zero", &searchv1.Point{Lat: math.Copysign(0, -1), Lng: math.Inf(1)}),
		}}),
		"one point": marshal(&searchv1.LocateRequest{Points: []*searchv1.LocatePoint{lp("x", &searchv1.Point{Lat: 48.85, Lng: 2.35})}}),
		// lng before lat, id after point: proto accepts any field order.
		"reordered": protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType),
			protowire.AppendBytes(
				protowire.AppendTag(protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType),
					protowire.AppendFixed64(protowire.AppendTag(protowire.AppendFixed64(protowire.AppendTag(nil, 2, protowire.Fixed64Type), math.Float64bits(7)), 1, protowire.Fixed64Type), math.Float64bits(8))),
					1, protowire.BytesType), []byte("id"))),
	}
	point := protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), marshal(lp("p", &searchv1.Point{Lat: 1, Lng: 2})))
	withField := func(b []byte, num protowire.Number, typ protowire.Type, v []byte) []byte {
		b = protowire.AppendTag(append([]byte(nil), b...), num, typ)
		switch typ {
		case protowire.BytesType:
			return protowire.AppendBytes(b, v)
		case protowire.Fixed64Type:
			return protowire.AppendFixed64(b, 1)
		}
		return protowire.AppendVarint(b, 1)
	}
	inPoint := func(fields []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), fields)
	}
	declined := map[string][]byte{
		"empty":                  nil,
		"options":                marshal(&searchv1.LocateRequest{Options: &searchv1.LocateOptions{Limit: 3}, Points: []*searchv1.LocatePoint{lp("a", &searchv1.Point{})}}),
		"single point":           marshal(&searchv1.LocateRequest{Id: "a", Point: &searchv1.Point{Lat: 1}}),
		"id beside points":       append(marshal(&searchv1.LocateRequest{Id: "a"}), point...),
		"unknown field":          withField(point, 9, protowire.VarintType, nil),
		"points as varint":       withField(nil, 4, protowire.VarintType, nil),
		"id twice":               inPoint(withField(marshal(lp("a", nil)), 1, protowire.BytesType, []byte("b"))),
		"point twice":            inPoint(withField(marshal(lp("a", &searchv1.Point{Lat: 1})), 2, protowire.BytesType, marshal(&searchv1.Point{Lng: 2}))),
		"unknown in LocatePoint": inPoint(withField(nil, 3, protowire.BytesType, nil)),
		"lat twice":              inPoint(withField(nil, 2, protowire.BytesType, withField(marshal(&searchv1.Point{Lat: 1}), 1, protowire.Fixed64Type, nil))),
		"lat as varint":          inPoint(withField(nil, 2, protowire.BytesType, withField(nil, 1, protowire.VarintType, nil))),
		"invalid UTF-8":          inPoint(withField(nil, 1, protowire.BytesType, []byte{0xff, 'a'})),
		"truncated":              point[:len(point)-3],
		"truncated length":       protowire.AppendTag(nil, 4, protowire.BytesType),
		"bad tag":                append(append([]byte(nil), point...), 0),
	}
	for name, b := range taken {
		want := &searchv1.LocateRequest{}
		if err := proto.Unmarshal(b, want); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := &searchv1.LocateRequest{}
		if !decodeLocatePoints(b, got) {
			t.Errorf("%s: declined", name)
			continue
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("%s: decoded (-proto +fast):\n%s", name, diff)
		}
	}
	for name, b := range declined {
		got := &searchv1.LocateRequest{}
		if decodeLocatePoints(b, got) {
			t.Errorf("%s: decoded as %v", name, got)
		}
		if !proto.Equal(got, &searchv1.LocateRequest{}) {
			t.Errorf("%s: declined, but left %v", name, got)
		}
	}
}
