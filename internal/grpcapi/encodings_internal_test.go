package grpcapi

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/google/go-cmp/cmp"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
)

// TestKeptEncodingsAreTheThingOnTheWire: a thing with Encodings (one from
// memory) reaches the client exactly as the same thing without them, in
// every shape, the first time and from the encodings after, and a shape
// kept apart from another gets its own encoding.
func TestKeptEncodingsAreTheThingOnTheWire(t *testing.T) {
	thing := geo.Thing{ID: 7, Collection: "countries", Key: "FR", Name: "France",
		Properties: map[string]any{"name": "France", "pop": 68.0, "eu": true},
		BBox:       geo.BBox{MinLng: -5, MinLat: 41, MaxLng: 10, MaxLat: 51}}
	kept := thing
	kept.Encodings = new(geo.Encodings)
	masks := []struct {
		name  string
		paths []string
	}{{"default", nil}, {"name", []string{"name"}}, {"id and bbox", []string{"id", "bbox"}}, {"id", []string{"id"}},
		{"no properties", []string{"id", "name", "key", "collection", "bbox"}}}
	for round := range 2 {
		for i, m := range masks {
			name, paths := m.name, m.paths
			var mask *fieldmaskpb.FieldMask
			if paths != nil {
				mask = &fieldmaskpb.FieldMask{Paths: paths}
			}
			sh, err := shapeOf(mask, false, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			shaped := func(t geo.Thing) geo.Thing { // as the store leaves out what the mask omits
				if sh.output.Omit&geo.FieldKey != 0 {
					t.Key = ""
				}
				if sh.output.Omit&geo.FieldCollection != 0 {
					t.Collection = ""
				}
				if sh.output.Omit&geo.FieldProperties != 0 {
					t.Properties = nil
				}
				if sh.output.Omit&geo.FieldBBox != 0 {
					t.BBox = geo.BBox{}
				}
				return t
			}
			want, err := thingToProto(shaped(thing), &sh)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := thingMessage(shaped(kept), &sh)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, onTheWire(t, msg), protocmp.Transform()); diff != "" {
				t.Errorf("round %d, mask %s: (-built +kept)\n%s", round, name, diff)
			}
			again, _ := thingMessage(shaped(kept), &sh)
			// The first geo.EncodingSlots shapes are kept.
			if kept := again == msg; kept != (i < geo.EncodingSlots) {
				t.Errorf("round %d, mask %s: kept %v", round, name, kept)
			}
		}
	}
	// Properties selected by name are built per answer.
	sh := shape{properties: []string{"pop"}}
	msg, err := thingMessage(kept, &sh)
	if err != nil {
		t.Fatal(err)
	}
	if got := onTheWire(t, msg).GetProperties().GetFields(); len(got) != 1 || got["pop"].GetNumberValue() != 68 {
		t.Errorf("properties [pop]: got %v", got)
	}
}

// onTheWire is m as a client reads it.
func onTheWire(t *testing.T, m *searchv1.Thing) *searchv1.Thing {
	t.Helper()
	resp, err := proto.Marshal(&searchv1.SearchResponse{Things: []*searchv1.Thing{m}, TotalSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got searchv1.SearchResponse
	if err := proto.Unmarshal(resp, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Things) != 1 || got.TotalSize != 1 {
		t.Fatalf("decoded %d things, total %d", len(got.Things), got.TotalSize)
	}
	return got.Things[0]
}
