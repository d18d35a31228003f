package server_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/server/servertest"
)

func TestBadSearchInputIsRejectedAndChangesNothing(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": servertest.FixtureDB(t)}, true)
	before := servertest.Fingerprint(t, ts.DBURL)

	first, err := ts.Client.Search(context.Background(), &searchv1.SearchRequest{Query: "a", PageSize: 2})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v %v", first, err)
	}
	foreign := first.GetNextPageToken()
	pt := func(lat, lng float64) *searchv1.Point { return &searchv1.Point{Lat: lat, Lng: lng} }
	tests := []struct {
		name    string
		req     *searchv1.SearchRequest
		code    codes.Code
		message string
	}{
		{"empty request", &searchv1.SearchRequest{}, codes.InvalidArgument, "a search needs a query, a point, a collection or a property filter"},
		{"lat NaN", &searchv1.SearchRequest{Point: pt(math.NaN(), 0)}, codes.InvalidArgument, "point.lat must be a finite number, got NaN"},
		{"lng +Inf", &searchv1.SearchRequest{Point: pt(0, math.Inf(1))}, codes.InvalidArgument, "point.lng must be a finite number, got +Inf"},
		{"lat -Inf", &searchv1.SearchRequest{Point: pt(math.Inf(-1), 0)}, codes.InvalidArgument, "point.lat must be a finite number, got -Inf"},
		{"lat out of range", &searchv1.SearchRequest{Point: pt(90.0001, 0)}, codes.InvalidArgument, "point.lat must be within [-90, 90], got 90.0001"},
		{"lng out of range", &searchv1.SearchRequest{Point: pt(0, -181)}, codes.InvalidArgument, "point.lng must be within [-180, 180], got -181"},
		{"negative page size", &searchv1.SearchRequest{Query: "a", PageSize: -1}, codes.InvalidArgument, "page_size must not be negative, got -1"},
		{"malformed page token", &searchv1.SearchRequest{Query: "a", PageToken: "not a token!"}, codes.InvalidArgument, "page_token is malformed"},
		{"truncated page token", &searchv1.SearchRequest{Query: "a", PageToken: foreign[:5]}, codes.InvalidArgument, "page_token is malformed"},
		{"foreign page token", &searchv1.SearchRequest{Query: "b", PageToken: foreign}, codes.InvalidArgument, "page_token was issued for a different search"},
		{"page token for another point", &searchv1.SearchRequest{Query: "a", Point: pt(1, 1), PageToken: foreign}, codes.InvalidArgument, "page_token was issued for a different search"},
		{"5 MB query", &searchv1.SearchRequest{Query: strings.Repeat("x", 5<<20)}, codes.InvalidArgument, "query is 5242880 characters long; the limit is 256"},
		{"10 MB query: over GRPC_MAX_QUERY_MESSAGE_BYTES, refused unparsed", &searchv1.SearchRequest{Query: strings.Repeat("x", 10<<20)}, codes.ResourceExhausted, "the SearchRequest message is 10485765 bytes; the limit is 8388608"},
		{"NUL in query", &searchv1.SearchRequest{Query: "a\x00b"}, codes.InvalidArgument, "query must not contain NUL characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ts.Client.Search(context.Background(), tt.req)
			st := status.Convert(err)
			if st.Code() != tt.code || !strings.HasPrefix(st.Message(), tt.message) {
				t.Errorf("got %s %q, want %s %q", st.Code(), st.Message(), tt.code, tt.message)
			}
		})
	}

	// SQL metacharacters are just characters: they match nothing here, and
	// change nothing.
	for _, q := range []string{"'; DROP TABLE thing; --", `%`, `_`, `\`, "$1", "' OR '1'='1", "\";--"} {
		resp, err := ts.Client.Search(context.Background(), &searchv1.SearchRequest{Query: q})
		if err != nil || len(resp.GetThings()) != 0 {
			t.Errorf("query %q: %d things, %v; want none and no error", q, len(resp.GetThings()), err)
		}
	}
	// Above the maximum page size is served at the maximum (AIP-158).
	resp, err := ts.Client.Search(context.Background(), &searchv1.SearchRequest{Query: "a", PageSize: math.MaxInt32})
	if err != nil || len(resp.GetThings()) == 0 {
		t.Errorf("huge page size: %v", err)
	}
	if after := servertest.Fingerprint(t, ts.DBURL); after != before {
		t.Errorf("bad searches changed the store: %s -> %s", before, after)
	}
}

func TestBadImportInputIsRejectedAndChangesNothing(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, map[string]string{"MAX_FEATURE_VERTICES": "1000", "GRPC_MAX_MESSAGE_BYTES": "8388608", "DATABASE_URL": servertest.FixtureDB(t)}, true)
	before := servertest.Fingerprint(t, ts.DBURL)

	square := `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}`
	// A closed ring of 1001 positions (1000 distinct vertices plus the closing one).
	positions := make([]string, 0, 1001)
	for i := range 1001 {
		a := 2 * math.Pi * float64(i%1000) / 1000
		positions = append(positions, fmt.Sprintf("[%g,%g]", math.Cos(a), math.Sin(a)))
	}
	ring := `{"type":"Polygon","coordinates":[[` + strings.Join(positions, ",") + `]]}`

	features := []struct {
		req    *searchv1.ImportRequest
		reason string
	}{
		{&searchv1.ImportRequest{Name: "text", GeometryGeojson: "not GeoJSON at all"}, "geometry is not valid GeoJSON"},
		{&searchv1.ImportRequest{Name: "csv", GeometryGeojson: "id,name\n1,France"}, "geometry is not valid GeoJSON"},
		{&searchv1.ImportRequest{Name: "empty", GeometryGeojson: ""}, "geometry is not valid GeoJSON"},
		{&searchv1.ImportRequest{Name: "null", GeometryGeojson: "null"}, "geometry is missing"},
		{&searchv1.ImportRequest{Name: "point", GeometryGeojson: `{"type":"Point","coordinates":[1,2]}`}, "geometry type Point is not supported"},
		{&searchv1.ImportRequest{Name: "line", GeometryGeojson: `{"type":"LineString","coordinates":[[1,2],[3,4]]}`}, "geometry type LineString is not supported"},
		{&searchv1.ImportRequest{Name: "feature", GeometryGeojson: `{"type":"Feature","geometry":null}`}, `geometry type "Feature" is not supported`},
		{&searchv1.ImportRequest{Name: "empty polygon", GeometryGeojson: `{"type":"MultiPolygon","coordinates":[]}`}, "geometry is empty"},
		{&searchv1.ImportRequest{Name: "lat out of range", GeometryGeojson: `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,91],[0,0]]]}`}, "polygon 0 ring 0 position 2: latitude 91 is outside [-90, 90]"},
		{&searchv1.ImportRequest{Name: "lng out of range", GeometryGeojson: `{"type":"Polygon","coordinates":[[[0,0],[181,0],[1,1],[0,0]]]}`}, "polygon 0 ring 0 position 1: longitude 181 is outside [-180, 180]"},
		{&searchv1.ImportRequest{Name: "too many vertices", GeometryGeojson: ring}, "geometry has 1001 vertices; the limit is 1000"},
		{&searchv1.ImportRequest{Name: "", GeometryGeojson: square}, "name is required"},
		{&searchv1.ImportRequest{Name: "nul\x00name", GeometryGeojson: square}, "name must not contain NUL characters"},
		{&searchv1.ImportRequest{Name: "bad key", Key: strings.Repeat("k", 300), GeometryGeojson: square}, "key is 300 characters long; the limit is 256"},
		{&searchv1.ImportRequest{Name: "collapsed", GeometryGeojson: `{"type":"Polygon","coordinates":[[[0,0],[1,1],[2,2],[0,0]]]}`}, "geometry has no area"},
	}
	stream, err := ts.Client.Import(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range features {
		if err := stream.Send(f.req); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if resp.GetImported() != 0 || len(resp.GetRejected()) != len(features) {
		t.Fatalf("imported %d, rejected %d; want 0 and %d: %v", resp.GetImported(), len(resp.GetRejected()), len(features), resp.GetRejected())
	}
	for i, p := range resp.GetRejected() {
		if p.GetIndex() != int64(i) || p.GetName() != features[i].req.GetName() || !strings.HasPrefix(p.GetReason(), features[i].reason) {
			t.Errorf("rejection %d = {%d %q %q}, want {%d %q %q...}", i, p.GetIndex(), p.GetName(), p.GetReason(), i, features[i].req.GetName(), features[i].reason)
		}
	}

	// A feature larger than the message limit (here 8 MiB; a feature with
	// 10 million vertices is ~100 MB of GeoJSON) ends the import with
	// RESOURCE_EXHAUSTED, and the features before it are not stored.
	stream, err = ts.Client.Import(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&searchv1.ImportRequest{Name: "fine", GeometryGeojson: square}); err != nil {
		t.Fatal(err)
	}
	huge := `{"type":"Polygon","coordinates":[[` + strings.Repeat("[1.5,2.5],", 10_000_000) + `[1.5,2.5]]]}`
	_ = stream.Send(&searchv1.ImportRequest{Name: "huge", GeometryGeojson: huge})
	_, err = stream.CloseAndRecv()
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "larger than max") {
		t.Errorf("10M-vertex feature: %s %q, want ResourceExhausted", st.Code(), st.Message())
	}

	if after := servertest.Fingerprint(t, ts.DBURL); after != before {
		t.Errorf("bad imports changed the store: %s -> %s", before, after)
	}
}

func TestClientDisconnectingMidImportChangesNothing(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": servertest.FixtureDB(t)}, true)
	before := servertest.Fingerprint(t, ts.DBURL)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := ts.Client.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rf := range geotest.LoadRaw(t, "ne_50m_countries.geojson") {
		if err := stream.Send(&searchv1.ImportRequest{Name: rf.Name, GeometryGeojson: string(rf.GeometryJSON)}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the server has written into its open transaction, then
	// vanish without closing the stream.
	dbName := ts.DBURL[strings.LastIndex(ts.DBURL, "/")+1 : strings.Index(ts.DBURL, "?")]
	waitFor(t, "the import transaction to write", func(conn *pgx.Conn) bool { return writers(conn, dbName) > 0 }, ts.DBURL)
	cancel()
	waitFor(t, "the import transaction to end", func(conn *pgx.Conn) bool { return writers(conn, dbName) == 0 }, ts.DBURL)
	if after := servertest.Fingerprint(t, ts.DBURL); after != before {
		t.Errorf("an abandoned import changed the store: %s -> %s", before, after)
	}
}

// writers counts the other sessions on dbName inside a transaction that has
// written something (and so holds a transaction id).
func writers(conn *pgx.Conn, dbName string) int {
	var n int
	_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = $1 AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`, dbName).Scan(&n)
	return n
}

func waitFor(t *testing.T, what string, cond func(*pgx.Conn) bool, dbURL string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for !cond(conn) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestImportOverTheFeatureLimitStoresNothing(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, map[string]string{"MAX_IMPORT_FEATURES": "3"}, true)
	before := servertest.Fingerprint(t, ts.DBURL)
	stream, err := ts.Client.Import(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		sq := fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%d,0],[%d,0],[%d,1],[%d,0]]]}`, i, i+1, i+1, i)
		if err := stream.Send(&searchv1.ImportRequest{Name: fmt.Sprint("f", i), GeometryGeojson: sq}); err != nil {
			break // the server may end the stream first
		}
	}
	_, err = stream.CloseAndRecv()
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "MAX_IMPORT_FEATURES") {
		t.Errorf("five features with a limit of three: %s %q, want ResourceExhausted", st.Code(), st.Message())
	}
	if after := servertest.Fingerprint(t, ts.DBURL); after != before {
		t.Errorf("an import over the limit stored something: %s -> %s", before, after)
	}
}
