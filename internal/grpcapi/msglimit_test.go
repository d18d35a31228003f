package grpcapi_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// TestQueryMessagesHaveTheirOwnLimit: a Search or Locate message over
// GRPC_MAX_QUERY_MESSAGE_BYTES is refused with RESOURCE_EXHAUSTED before it
// is parsed (nothing reaches the store), while Import's messages may still
// be as large as GRPC_MAX_MESSAGE_BYTES.
func TestQueryMessagesHaveTheirOwnLimit(t *testing.T) {
	t.Parallel()
	cfg := testConfig
	cfg.MaxMessageBytes, cfg.MaxQueryMessageBytes = 4<<20, 1<<20
	svc := &fakeService{}
	conn, _ := serveWith(t, svc, cfg, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(16<<20)))
	client := searchv1.NewSearchServiceClient(conn)
	ctx := context.Background()
	big := `{"type":"Polygon","coordinates":[[` + strings.Repeat("[1.000000000000,1.000000000000],", 50_000) + `[1,1]]]}` // 1.6 MB

	_, err := client.Search(ctx, &searchv1.SearchRequest{AreaGeojson: big})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "GRPC_MAX_QUERY_MESSAGE_BYTES") {
		t.Errorf("a 1.6 MB Search: %s %q, want ResourceExhausted naming GRPC_MAX_QUERY_MESSAGE_BYTES", st.Code(), st.Message())
	}
	locate, err := client.Locate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = locate.Send(&searchv1.LocateRequest{Id: strings.Repeat("i", 2<<20), Point: &searchv1.Point{Lat: 1, Lng: 2}}) // 2 MB
	_, err = locate.Recv()
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "GRPC_MAX_QUERY_MESSAGE_BYTES") {
		t.Errorf("a 2 MB Locate message: %s %q, want ResourceExhausted naming GRPC_MAX_QUERY_MESSAGE_BYTES", st.Code(), st.Message())
	}
	svc.mu.Lock()
	located, searched := len(svc.locateBatches), len(svc.queries)
	svc.mu.Unlock()
	if searched > 0 || located > 0 {
		t.Errorf("a refused message reached the store")
	}

	// Import takes the large limit; a small Search still works.
	stream, err := client.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&searchv1.ImportRequest{Name: strings.Repeat("n", 2<<20), GeometryGeojson: `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Errorf("a 2 MB Import message: %v, want it read (and the feature judged on its own)", err)
	}
	if _, err := client.Search(ctx, &searchv1.SearchRequest{Query: "x"}); err != nil {
		t.Errorf("a small Search: %v", err)
	}
}
