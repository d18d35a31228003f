package grpcapi_test

import (
	"context"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
)

// locateOptionCases set each field of LocateOptions to a valid value that
// is not its default. A field added to LocateOptions without a case here
// fails TestEveryLocateOptionReachesTheStore.
var locateOptionCases = map[string]func(o *searchv1.LocateOptions){
	"collections": func(o *searchv1.LocateOptions) { o.Collections = []string{"c"} },
	"where": func(o *searchv1.LocateOptions) {
		o.Where = []*searchv1.PropertyFilter{{Key: "k", Values: []*structpb.Value{structpb.NewStringValue("v")}}}
	},
	"query":                func(o *searchv1.LocateOptions) { o.Query = "x" },
	"limit":                func(o *searchv1.LocateOptions) { o.Limit = 3 },
	"include_geometry":     func(o *searchv1.LocateOptions) { o.IncludeGeometry = true },
	"max_distance_m":       func(o *searchv1.LocateOptions) { o.MaxDistanceM = 1000 },
	"read_mask":            func(o *searchv1.LocateOptions) { o.ReadMask = mask("id", "name") },
	"simplify_tolerance":   func(o *searchv1.LocateOptions) { o.SimplifyTolerance = 0.1 },
	"coordinate_precision": func(o *searchv1.LocateOptions) { o.CoordinatePrecision = proto.Int32(3) },
}

// locateOptionsOfTheEdge are the fields of LocateOptions that the edge
// itself honours, so that they change no LocateQuery, with where that is
// tested.
var locateOptionsOfTheEdge = map[string]string{
	"consistency_token": "waited for before the first point (consistency_test.go)",
}

// locateWith runs a Locate stream of options and one point through svc and
// returns the query the store got.
func locateWith(t *testing.T, client searchv1.SearchServiceClient, svc *fakeService, o *searchv1.LocateOptions) geo.LocateQuery {
	t.Helper()
	stream, err := client.Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&searchv1.LocateRequest{Options: o, Point: &searchv1.Point{Lat: 1, Lng: 1}}); err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil || resp.GetError() != nil {
			t.Fatalf("locate with %v: %v, %v", o, err, resp.GetError())
		}
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	q := svc.lastLocate
	q.Points = nil
	return q
}

// TestEveryLocateOptionReachesTheStore walks the fields of LocateOptions:
// each, set alone, changes the query the store is asked (the copy of
// options into geo.LocateQuery misses none), unless the edge honours it
// itself; a field with no case fails.
func TestEveryLocateOptionReachesTheStore(t *testing.T) {
	t.Parallel()
	svc := &fakeService{}
	client, _ := serve(t, svc)
	base := locateWith(t, client, svc, &searchv1.LocateOptions{})
	fields := (&searchv1.LocateOptions{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		name := string(fields.Get(i).Name())
		if _, ok := locateOptionsOfTheEdge[name]; ok {
			continue
		}
		set, ok := locateOptionCases[name]
		if !ok {
			t.Errorf("LocateOptions.%s has no case in locateOptionCases: add one, and make Locate honour it", name)
			continue
		}
		o := &searchv1.LocateOptions{}
		set(o)
		if got := locateWith(t, client, svc, o); cmp.Equal(got, base) {
			t.Errorf("LocateOptions.%s set changed nothing the store was asked: %+v", name, got)
		}
	}
}
