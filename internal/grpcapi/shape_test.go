package grpcapi_test

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
)

// shapedThing is a thing with every field set.
var shapedThing = geo.Thing{ID: 7, Collection: "c", Key: "k", Name: "Seven", Properties: map[string]any{"p": 1.0},
	BBox: geo.BBox{MinLng: 1, MinLat: 2, MaxLng: 3, MaxLat: 4}, GeometryGeoJSON: `{"type":"MultiPolygon","coordinates":[]}`}

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

var cmpProto = protocmp.Transform()

// TestReadMaskShapesEveryRPC checks the mask on each RPC that returns
// things: the fields it selects are returned and nothing else, the store is
// told which fields it need not read, and include_geometry adds the
// geometry to the mask or, with no mask, to the default fields.
func TestReadMaskShapesEveryRPC(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: []geo.Thing{shapedThing}}
	client, _ := serve(t, svc)
	ctx := context.Background()
	full := &searchv1.Thing{Id: 7, Collection: "c", Key: "k", Name: "Seven",
		Properties: &structpb.Struct{Fields: map[string]*structpb.Value{"p": structpb.NewNumberValue(1)}},
		Bbox:       &searchv1.BoundingBox{MinLng: 1, MinLat: 2, MaxLng: 3, MaxLat: 4}, GeometryGeojson: shapedThing.GeometryGeoJSON}
	only := func(fields ...string) *searchv1.Thing {
		th := proto.Clone(full).(*searchv1.Thing)
		m := th.ProtoReflect()
		fds := m.Descriptor().Fields()
		for i := range fds.Len() {
			fd := fds.Get(i)
			keep := false
			for _, f := range fields {
				keep = keep || string(fd.Name()) == f
			}
			if !keep {
				m.Clear(fd)
			}
		}
		return th
	}
	allButGeometry := []string{"id", "collection", "key", "name", "properties", "bbox"}
	omitStore := geo.FieldKey | geo.FieldCollection | geo.FieldProperties | geo.FieldBBox
	tests := []struct {
		name     string
		mask     *fieldmaskpb.FieldMask
		geometry bool
		want     *searchv1.Thing
		omit     geo.Fields // what the store is told not to read
		read     bool       // whether the store is asked for the geometry
	}{
		{"no mask: the default fields", nil, false, only(allButGeometry...), 0, false},
		{"empty mask: the default fields", mask(), false, only(allButGeometry...), 0, false},
		{"no mask, include_geometry", nil, true, full, 0, true},
		{"id and name", mask("id", "name"), false, only("id", "name"), omitStore, false},
		{"name and key", mask("name", "key"), false, only("name", "key"), omitStore &^ geo.FieldKey, false},
		{"id, include_geometry", mask("id"), true, only("id", "geometry_geojson"), omitStore, true},
		{"geometry by the mask", mask("geometry_geojson", "properties"), false, only("geometry_geojson", "properties"), omitStore &^ geo.FieldProperties, true},
		{"*", mask("*"), false, full, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Search(ctx, &searchv1.SearchRequest{Query: "s", ReadMask: tt.mask, IncludeGeometry: tt.geometry})
			if err != nil || len(resp.GetThings()) != 1 {
				t.Fatalf("search: %v, %v", resp, err)
			}
			if diff := cmp.Diff(tt.want, resp.GetThings()[0], cmpProto); diff != "" {
				t.Errorf("search (-want +got):\n%s", diff)
			}
			if q := svc.lastQuery(); q.Omit != tt.omit || q.IncludeGeometry != tt.read {
				t.Errorf("search asked the store for omit %b, geometry %v; want %b, %v", q.Omit, q.IncludeGeometry, tt.omit, tt.read)
			}

			stream, err := client.SearchStream(ctx, &searchv1.SearchRequest{Query: "s", ReadMask: tt.mask, IncludeGeometry: tt.geometry})
			if err != nil {
				t.Fatal(err)
			}
			streamed, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, streamed, cmpProto); diff != "" {
				t.Errorf("search stream (-want +got):\n%s", diff)
			}
			if q := svc.lastQuery(); q.Omit != tt.omit || q.IncludeGeometry != tt.read {
				t.Errorf("search stream asked the store for omit %b, geometry %v; want %b, %v", q.Omit, q.IncludeGeometry, tt.omit, tt.read)
			}

			got, err := client.GetThing(ctx, &searchv1.GetThingRequest{Id: 7, ReadMask: tt.mask, IncludeGeometry: tt.geometry})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpProto); diff != "" {
				t.Errorf("get (-want +got):\n%s", diff)
			}

			answers := locateAll(t, client, &searchv1.LocateOptions{ReadMask: tt.mask, IncludeGeometry: tt.geometry, Limit: 1})
			if len(answers) != 1 || len(answers[0].GetThings()) != 1 {
				t.Fatalf("locate: %v", answers)
			}
			if diff := cmp.Diff(tt.want, answers[0].GetThings()[0], cmpProto); diff != "" {
				t.Errorf("locate (-want +got):\n%s", diff)
			}
		})
	}
}

// locateAll sends opts and one point, and returns every answer.
func locateAll(t *testing.T, client searchv1.SearchServiceClient, opts *searchv1.LocateOptions) []*searchv1.LocateResponse {
	t.Helper()
	stream, err := client.Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&searchv1.LocateRequest{Options: opts, Id: "p", Point: &searchv1.Point{}}); err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	var out []*searchv1.LocateResponse
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("locate: %v", err)
		}
		out = append(out, resp)
	}
}

// TestBadShapingIsRejectedOnEveryRPC: a mask naming unknown fields, and bad
// geometry settings, are INVALID_ARGUMENT on Search, SearchStream, Locate
// and GetThing, and the message names the unknown fields.
func TestBadShapingIsRejectedOnEveryRPC(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: []geo.Thing{shapedThing}}
	client, _ := serve(t, svc)
	ctx := context.Background()
	seventeen := int32(16)
	minusOne := int32(-1)
	tests := []struct {
		name      string
		mask      *fieldmaskpb.FieldMask
		tolerance float64
		precision *int32
		message   []string // the error message contains each
	}{
		{"unknown fields", mask("id", "colour", "bbox.min_lng", "Name"), 0, nil,
			[]string{`read_mask names unknown fields of Thing: "colour", "bbox.min_lng", "Name"`, "the fields are bbox, collection,"}},
		{"negative tolerance", nil, -0.1, nil, []string{"simplify_tolerance must be within [0, 180] degrees, got -0.1"}},
		{"NaN tolerance", nil, math.NaN(), nil, []string{"simplify_tolerance must be within [0, 180] degrees, got NaN"}},
		{"infinite tolerance", nil, math.Inf(1), nil, []string{"got +Inf"}},
		{"16 digits", nil, 0, &seventeen, []string{"coordinate_precision must be within [0, 15] decimal digits, got 16"}},
		{"-1 digits", nil, 0, &minusOne, []string{"got -1"}},
	}
	check := func(t *testing.T, rpc string, err error, want []string) {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument {
			t.Errorf("%s: %s %q, want INVALID_ARGUMENT", rpc, st.Code(), st.Message())
		}
		for _, w := range want {
			if !strings.Contains(st.Message(), w) {
				t.Errorf("%s: message %q lacks %q", rpc, st.Message(), w)
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &searchv1.SearchRequest{Query: "s", ReadMask: tt.mask, SimplifyTolerance: tt.tolerance, CoordinatePrecision: tt.precision, IncludeGeometry: true}
			_, err := client.Search(ctx, req)
			check(t, "Search", err, tt.message)

			stream, err := client.SearchStream(ctx, req)
			if err == nil {
				_, err = stream.Recv()
			}
			check(t, "SearchStream", err, tt.message)

			ls, err := client.Locate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = ls.Send(&searchv1.LocateRequest{Options: &searchv1.LocateOptions{ReadMask: tt.mask, SimplifyTolerance: tt.tolerance, CoordinatePrecision: tt.precision}, Id: "p", Point: &searchv1.Point{}})
			_ = ls.CloseSend()
			_, err = ls.Recv()
			check(t, "Locate", err, tt.message)

			if tt.mask != nil { // GetThing has a mask, and no geometry settings
				_, err = client.GetThing(ctx, &searchv1.GetThingRequest{Id: 7, ReadMask: tt.mask})
				check(t, "GetThing", err, tt.message)
			}
		})
	}
}

// TestShapingReachesTheStore: the geometry settings and show_total_size go
// to the store as asked, the total comes back as total_size, and a page
// token stays valid when the mask or the settings change between pages.
func TestShapingReachesTheStore(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: things(5)}
	client, _ := serve(t, svc)
	ctx := context.Background()
	three := int32(3)
	first, err := client.Search(ctx, &searchv1.SearchRequest{Query: "t", PageSize: 2, IncludeGeometry: true,
		SimplifyTolerance: 0.5, CoordinatePrecision: &three, ShowTotalSize: true})
	if err != nil {
		t.Fatal(err)
	}
	q := svc.lastQuery()
	if !q.WithTotal || q.SimplifyTolerance != 0.5 || q.CoordinateDigits == nil || *q.CoordinateDigits != 3 {
		t.Errorf("the store got %+v", q)
	}
	if first.GetTotalSize() != 5 || first.GetNextPageToken() == "" {
		t.Errorf("first page: total %d, next %q; want 5 and a token", first.GetTotalSize(), first.GetNextPageToken())
	}
	second, err := client.Search(ctx, &searchv1.SearchRequest{Query: "t", PageSize: 2, PageToken: first.GetNextPageToken(), ReadMask: mask("id")})
	if err != nil || len(second.GetThings()) != 2 || second.GetTotalSize() != 0 {
		t.Fatalf("second page with another shape: %v, %v", second, err)
	}
	if q := svc.lastQuery(); q.WithTotal || q.CoordinateDigits != nil || q.After == nil {
		t.Errorf("second page: the store got %+v", q)
	}
}
