package server_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/server/servertest"
)

// injections are classic SQL injection payloads. Every value reaches SQL as
// a bound parameter, so each is just text.
var injections = []string{
	`'; DROP TABLE thing; --`,
	`' OR '1'='1`,
	`"; DELETE FROM thing_part; --`,
	`\'; TRUNCATE thing CASCADE; --`,
	`$1); DROP TABLE thing_part; --`,
	`%' AND pg_sleep(5) IS NULL AND name LIKE '%`,
	`) UNION SELECT id, name FROM pg_user --`,
	"name\\' OR 1=1 /*",
}

// TestInjectionThroughEveryStringFieldIsJustText sends the payloads through
// every string field of the API: the searches change nothing, and the
// import stores each payload verbatim and nothing else.
func TestInjectionThroughEveryStringFieldIsJustText(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": servertest.FixtureDB(t)}, true)
	before := servertest.Fingerprint(t, ts.DBURL)
	ctx := context.Background()

	for _, p := range injections {
		if _, err := ts.Client.Search(ctx, &searchv1.SearchRequest{Query: p}); err != nil {
			t.Errorf("query %q: %v", p, err)
		}
		_, err := ts.Client.Search(ctx, &searchv1.SearchRequest{Query: "a", PageToken: p})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("page_token %q: %v, want InvalidArgument", p, err)
		}
	}
	if after := servertest.Fingerprint(t, ts.DBURL); after != before {
		t.Fatalf("searches changed the store: %s -> %s", before, after)
	}

	stream, err := ts.Client.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range injections {
		props, err := structpb.NewStruct(map[string]any{"note": p, p: "as a key"})
		if err != nil {
			t.Fatal(err)
		}
		geom := fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%d,80],[%d,80],[%d,81],[%d,80]]]}`, i, i+1, i+1, i)
		if err := stream.Send(&searchv1.ImportRequest{Name: p, Key: p, Properties: props, GeometryGeojson: geom}); err != nil {
			t.Fatal(err)
		}
	}
	// Geometry text is not SQL either: it is parsed in Go and sent as WKB.
	if err := stream.Send(&searchv1.ImportRequest{Name: "geometry", GeometryGeojson: injections[0]}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil || resp.GetImported() != int64(len(injections)) || len(resp.GetRejected()) != 1 {
		t.Fatalf("import: %v, %v; want %d stored and the geometry rejected", resp, err, len(injections))
	}

	conn := servertest.Connect(t, ts.DBURL)
	defer conn.Close(ctx)
	var things, withoutParts int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM thing_part p WHERE p.thing_id = thing.id)) FROM thing`).Scan(&things, &withoutParts); err != nil {
		t.Fatalf("the tables are not intact: %v", err)
	}
	if things != 177+len(injections) || withoutParts != 0 {
		t.Errorf("%d things (%d without parts), want the 177 countries plus %d", things, withoutParts, len(injections))
	}
	for _, p := range injections {
		var name, key, note string
		err := conn.QueryRow(ctx, `SELECT name, key, properties->>'note' FROM thing WHERE key = $1`, p).Scan(&name, &key, &note)
		if err != nil || name != p || key != p || note != p {
			t.Errorf("payload %q stored as name %q key %q note %q (%v)", p, name, key, note, err)
		}
		page, err := ts.Client.Search(ctx, &searchv1.SearchRequest{Query: p})
		if err != nil || len(page.GetThings()) != 1 || page.GetThings()[0].GetName() != p {
			t.Errorf("searching for %q found %v (%v), want exactly itself", p, page.GetThings(), err)
		}
	}
}
