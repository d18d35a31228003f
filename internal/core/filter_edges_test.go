package core_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
)

// searching is a store that answers every search and Locate with nothing,
// keeps the filter it was last asked, and lists one queryable property,
// "kind" (strings), in every collection.
type searching struct {
	failing
	mu   sync.Mutex
	last geo.Filter
}

func (s *searching) Search(_ context.Context, q geo.Query) (geo.Page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = q.Filter
	return geo.Page{}, nil
}

func (s *searching) Locate(_ context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = q.Filter
	return make([][]geo.Thing, len(q.Points)), nil
}

func (s *searching) CollectionProperties(context.Context, string) ([]geo.Property, error) {
	return []geo.Property{{Key: "kind", Types: []string{"string"}}}, nil
}

func (s *searching) filter() geo.Filter {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.last
	s.last = geo.Filter{}
	return f
}

// filterEdge is how each edge sets one field of geo.Filter: a gRPC search
// request and an HTTP request (a path and query) that set it to a value
// that is not its zero, or, for an edge that has no way to, why.
type filterEdge struct {
	grpc   *searchv1.SearchRequest
	noGRPC string
	http   string
	noHTTP string
}

// filterEdges has a line for every field of geo.Filter.
var filterEdges = map[string]filterEdge{
	"Query": {
		grpc: &searchv1.SearchRequest{Query: "x"},
		http: "/collections/c/items?q=x",
	},
	"Point": {
		grpc:   &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 1, Lng: 1}},
		noHTTP: "HTTP searches points with /locate (LocateQuery.Points, TestEveryLocateOptionIsHTTPsToo); items has no point parameter in OGC API Features",
	},
	"MaxDistanceM": {
		grpc: &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 1, Lng: 1}, MaxDistanceM: 1000},
		http: "/locate?lat=1&lng=1&max_distance_m=1000",
	},
	"BBox": {
		grpc: &searchv1.SearchRequest{Bbox: &searchv1.BoundingBox{MinLng: 0, MinLat: 0, MaxLng: 1, MaxLat: 1}},
		http: "/collections/c/items?bbox=0,0,1,1",
	},
	"Area": {
		grpc:   &searchv1.SearchRequest{AreaGeojson: `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`},
		noHTTP: "HTTP's areas are CQL2's S_INTERSECTS, in Where (filter=), as OGC API Features Part 3 says",
	},
	"Relation": {
		grpc: &searchv1.SearchRequest{Bbox: &searchv1.BoundingBox{MinLng: 0, MinLat: 0, MaxLng: 1, MaxLat: 1},
			Relation: searchv1.Relation_RELATION_WITHIN},
		noHTTP: "OGC items' bbox is intersects only; other relations are CQL2's, in Where",
	},
	"Collections": {
		grpc: &searchv1.SearchRequest{Collections: []string{"c"}},
		http: "/collections/c/items",
	},
	"Properties": {
		grpc: &searchv1.SearchRequest{Where: []*searchv1.PropertyFilter{{Key: "kind", Values: []*structpb.Value{structpb.NewStringValue("lake")}}}},
		http: "/collections/c/items?kind=lake",
	},
	"Where": {
		noGRPC: "gRPC filters properties with where (Properties); CQL2 is OGC API Features Part 3's, HTTP only",
		http:   "/collections/c/items?filter=" + url.QueryEscape("kind = 'lake'"),
	},
}

// TestEveryFilterFieldIsDecodedByBothEdges walks geo.Filter's fields: for
// each, the gRPC request and the HTTP request of its line in filterEdges
// reach the store with that field set (the edge's decoding misses none),
// or the line says why the edge has none. A new field without a line, or
// a line whose request leaves the field unset, fails.
func TestEveryFilterFieldIsDecodedByBothEdges(t *testing.T) {
	t.Parallel()
	store := &searching{}
	client, h := edges(t, store)
	typ := reflect.TypeFor[geo.Filter]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		e, ok := filterEdges[name]
		if !ok {
			t.Errorf("geo.Filter.%s has no line in filterEdges: give it to both edges (gRPC SearchRequest, HTTP parameters), or say why an edge has none", name)
			continue
		}
		if e.grpc == nil && e.http == "" {
			t.Errorf("geo.Filter.%s: neither edge sets it", name)
		}
		switch {
		case e.grpc != nil:
			if _, err := client.Search(context.Background(), e.grpc); err != nil {
				t.Errorf("gRPC %s: %v", name, err)
			} else if reflect.ValueOf(store.filter()).Field(i).IsZero() {
				t.Errorf("gRPC: a search with %v reached the store without Filter.%s", e.grpc, name)
			}
		case e.noGRPC == "":
			t.Errorf("geo.Filter.%s: no gRPC request sets it, and no reason why", name)
		}
		switch {
		case e.http != "":
			resp := get(t, h, e.http)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("HTTP %s: %d %s", e.http, resp.StatusCode, body)
			} else if reflect.ValueOf(store.filter()).Field(i).IsZero() {
				t.Errorf("HTTP: %s reached the store without Filter.%s", e.http, name)
			}
		case e.noHTTP == "":
			t.Errorf("geo.Filter.%s: no HTTP request sets it, and no reason why", name)
		}
	}
}
