package grpcapi_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
)

// TestSortByAndPropertiesMapToTheDomain: sort_by reaches the store as
// sort keys (Search and SearchStream alike), its pages walk through tokens
// tied to the order, properties keeps the chosen keys of each thing, and
// bad values are INVALID_ARGUMENT naming the field.
func TestSortByAndPropertiesMapToTheDomain(t *testing.T) {
	t.Parallel()
	ts := things(7)
	for i := range ts {
		ts[i].Properties = map[string]any{"pop": float64(i), "kind": "k", "other": true}
	}
	svc := &fakeService{things: ts}
	client, _ := serve(t, svc)
	req := &searchv1.SearchRequest{Query: "thing", SortBy: "-pop, +kind", Properties: []string{"pop", "missing"}, PageSize: 3}
	var ids []int64
	var tokens []string
	for range 10 {
		resp, err := client.Search(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]geo.SortKey{{Property: "pop", Desc: true}, {Property: "kind"}}, svc.lastQuery().SortBy); diff != "" {
			t.Fatalf("sort keys (-want +got):\n%s", diff)
		}
		for _, th := range resp.GetThings() {
			ids = append(ids, th.GetId())
			if keys := th.GetProperties().GetFields(); len(keys) != 1 || keys["pop"] == nil {
				t.Errorf("thing %d has properties %v, want pop only", th.GetId(), th.GetProperties())
			}
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
		tokens = append(tokens, req.PageToken)
	}
	if diff := cmp.Diff([]int64{1, 2, 3, 4, 5, 6, 7}, ids); diff != "" {
		t.Errorf("walk (-want +got):\n%s", diff)
	}
	// A sorted token is refused with another order or without one.
	for name, other := range map[string]*searchv1.SearchRequest{
		"other order": {Query: "thing", SortBy: "pop,kind", PageToken: tokens[0]},
		"no order":    {Query: "thing", PageToken: tokens[0]},
	} {
		_, err := client.Search(context.Background(), other)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "page_token") {
			t.Errorf("%s: %s %q", name, st.Code(), st.Message())
		}
	}
	stream, err := client.SearchStream(context.Background(), &searchv1.SearchRequest{Query: "thing", SortBy: "-pop", Properties: []string{"kind"}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		th, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if diff := cmp.Diff(map[string]any{"kind": "k"}, th.GetProperties().AsMap()); diff != "" {
			t.Errorf("streamed properties (-want +got):\n%s", diff)
		}
	}
	if n != 7 || len(svc.lastQuery().SortBy) != 1 {
		t.Errorf("stream: %d things, sort %v", n, svc.lastQuery().SortBy)
	}
	// Without properties, every property is sent, as before.
	resp, err := client.Search(context.Background(), &searchv1.SearchRequest{Query: "thing", PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(resp.GetThings()[0].GetProperties().GetFields()); got != 3 {
		t.Errorf("without a selection: %d properties, want 3", got)
	}
	for _, c := range []struct {
		req  *searchv1.SearchRequest
		want string
	}{
		{&searchv1.SearchRequest{Query: "x", SortBy: "a,,b"}, "sort_by"},
		{&searchv1.SearchRequest{Query: "x", SortBy: "a.b"}, "nested path"},
		{&searchv1.SearchRequest{Query: "x", SortBy: "a,-a"}, "twice"},
		{&searchv1.SearchRequest{Query: "x", Properties: []string{"a", ""}}, "properties"},
	} {
		_, err := client.Search(context.Background(), c.req)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), c.want) {
			t.Errorf("%v: %s %q, want INVALID_ARGUMENT with %q", c.req, st.Code(), st.Message(), c.want)
		}
	}
}
