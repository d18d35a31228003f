package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/server/servertest"
)

// TestCollectionsThroughTheClient runs the CLI's collection and lifecycle
// commands against a real server: the names people script against.
func TestCollectionsThroughTheClient(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, nil, true)
	run := func(wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := ts.RunClient(t, args...)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	out := run(0, "import", geotest.Testdata("ne_50m_countries.geojson"), "--collection", "countries", "--key-property", "name")
	if !strings.Contains(out, "imported 241 features into countries") {
		t.Fatalf("import: %s", out)
	}
	run(0, "import", geotest.Testdata("ne_110m_countries.geojson"), "--collection", "coarse", "--key-property", "name")

	out = run(0, "search", "--lat", "48.85", "--lng", "2.35")
	if countLines(out, "France") != 2 {
		t.Errorf("unscoped search: want France of both collections:\n%s", out)
	}
	out = run(0, "search", "--lat", "48.85", "--lng", "2.35", "--collection", "countries")
	if !strings.Contains(out, " countries ") || strings.Contains(out, " coarse ") || !strings.Contains(out, "France") {
		t.Errorf("scoped search:\n%s", out)
	}
	out = run(0, "search", "--collection", "countries", "--where", "iso_n3=250,724", "--all", "--json")
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var th struct{ Name, Collection string }
		if err := json.Unmarshal([]byte(line), &th); err != nil {
			t.Fatalf("--all --json line %q: %v", line, err)
		}
		if th.Collection != "countries" {
			t.Errorf("thing of collection %q", th.Collection)
		}
		names = append(names, th.Name)
	}
	if strings.Join(names, ",") != "France,Spain" {
		t.Errorf("--where iso_n3=250,724: %v, want France and Spain", names)
	}
	run(2, "search", "--where", "=x")
	run(2, "search", "--where", "n:=notjson")

	out = run(0, "get", "--collection", "countries", "--key", "France", "--json")
	var fr struct{ Id, Collection, Key string }
	if err := json.Unmarshal([]byte(out), &fr); err != nil || fr.Collection != "countries" || fr.Key != "France" {
		t.Fatalf("get --json: %v\n%s", err, out)
	}
	if out = run(0, "get", "--id", fr.Id); !strings.Contains(out, "France") {
		t.Errorf("get --id: %s", out)
	}
	if out = run(1, "get", "--collection", "countries", "--key", "Atlantis"); !strings.Contains(out, "NotFound") {
		t.Errorf("get of an absent key: %s", out)
	}
	run(2, "get")

	if out = run(0, "delete", "--collection", "countries", "--key", "France", "--key", "Spain", "--key", "Atlantis"); !strings.Contains(out, "deleted 2 things") {
		t.Errorf("delete: %s", out)
	}
	if out = run(1, "delete", "--collection", "nope", "--key", "France"); !strings.Contains(out, "NotFound") {
		t.Errorf("delete in a missing collection: %s", out)
	}

	// A replace import makes the collection exactly the file.
	if out = run(0, "import", geotest.Testdata("ne_110m_countries.geojson"), "--collection", "countries", "--key-property", "name", "--replace"); !strings.Contains(out, "imported 177 features into countries") || !strings.Contains(out, "deleted 64 things the replace did not import") {
		t.Errorf("replace: %s", out)
	}

	out = run(0, "collections")
	if !strings.Contains(out, "coarse") || !strings.Contains(out, "countries") || !strings.Contains(out, " 177 ") {
		t.Errorf("collections:\n%s", out)
	}
	var list struct {
		Collections []struct {
			Name, Count string
			Bbox        map[string]float64
			UpdateTime  string
		}
	}
	if err := json.Unmarshal([]byte(run(0, "collections", "--json")), &list); err != nil || len(list.Collections) != 3 ||
		list.Collections[1].Name != "countries" || list.Collections[1].Count != "177" || list.Collections[1].UpdateTime == "" ||
		list.Collections[2].Name != "default" || list.Collections[2].Count != "" {
		t.Errorf("collections --json: %+v, %v", list, err)
	}
	if out = run(0, "delete-collection", "coarse"); !strings.Contains(out, "deleted collection coarse and its 177 things") {
		t.Errorf("delete-collection: %s", out)
	}
	if out = run(1, "delete-collection", "coarse"); !strings.Contains(out, "NotFound") {
		t.Errorf("delete-collection again: %s", out)
	}
}

// TestBadCollectionInputChangesNothing sends every kind of bad collection,
// lifecycle and property-filter input: each gets its code, and the store is
// unchanged.
func TestBadCollectionInputChangesNothing(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": servertest.FixtureDB(t)}, true)
	before := servertest.Fingerprint(t, ts.DBURL)
	ctx := context.Background()
	c := ts.Client
	str := structpb.NewStringValue
	where := func(key string, vs ...*structpb.Value) []*searchv1.PropertyFilter {
		return []*searchv1.PropertyFilter{{Key: key, Values: vs}}
	}
	badNames := map[string]string{
		"empty":      "",
		"too long":   strings.Repeat("a", 65),
		"upper case": "Countries",
		"spaces":     "postal zones",
		"SQL":        "x');DROP TABLE thing;--",
	}
	type call struct {
		name    string
		do      func() error
		code    codes.Code
		message string
	}
	var calls []call
	for what, name := range badNames {
		if name != "" { // an empty collection means "default" where one is optional
			calls = append(calls,
				call{"import into " + what, func() error {
					stream, err := c.Import(ctx)
					if err != nil {
						return err
					}
					_ = stream.Send(&searchv1.ImportRequest{Options: &searchv1.ImportOptions{Collection: name}})
					_, err = stream.CloseAndRecv()
					return err
				}, codes.InvalidArgument, "collection name"},
				call{"get from " + what, func() error {
					_, err := c.GetThing(ctx, &searchv1.GetThingRequest{Collection: name, Key: "France"})
					return err
				}, codes.InvalidArgument, "collection name"},
				call{"delete from " + what, func() error {
					_, err := c.DeleteThings(ctx, &searchv1.DeleteThingsRequest{Collection: name, Keys: []string{"France"}})
					return err
				}, codes.InvalidArgument, "collection name"})
		}
		calls = append(calls,
			call{"search in " + what, func() error {
				_, err := c.Search(ctx, &searchv1.SearchRequest{Query: "a", Collections: []string{name}})
				return err
			}, codes.InvalidArgument, "collection name"},
			call{"delete collection " + what, func() error {
				_, err := c.DeleteCollection(ctx, &searchv1.DeleteCollectionRequest{Name: name})
				return err
			}, codes.InvalidArgument, "collection name"})
	}
	calls = append(calls,
		call{"get with neither id nor key", func() error {
			_, err := c.GetThing(ctx, &searchv1.GetThingRequest{})
			return err
		}, codes.InvalidArgument, "give an id, or a collection and a key"},
		call{"get with both", func() error {
			_, err := c.GetThing(ctx, &searchv1.GetThingRequest{Id: 1, Key: "France"})
			return err
		}, codes.InvalidArgument, "give either an id, or a collection and a key, not both"},
		call{"delete with neither", func() error {
			_, err := c.DeleteThings(ctx, &searchv1.DeleteThingsRequest{})
			return err
		}, codes.InvalidArgument, "a delete needs ids, or a collection and keys"},
		call{"delete from a missing collection", func() error {
			_, err := c.DeleteThings(ctx, &searchv1.DeleteThingsRequest{Collection: "nope", Keys: []string{"France"}})
			return err
		}, codes.NotFound, `there is no collection "nope"`},
		call{"delete a missing collection", func() error {
			_, err := c.DeleteCollection(ctx, &searchv1.DeleteCollectionRequest{Name: "nope"})
			return err
		}, codes.NotFound, `there is no collection "nope"`},
		call{"property filter with an empty key", func() error {
			_, err := c.Search(ctx, &searchv1.SearchRequest{Where: where("", str("x"))})
			return err
		}, codes.InvalidArgument, "a property filter needs a key"},
		call{"property filter with a nested path", func() error {
			_, err := c.Search(ctx, &searchv1.SearchRequest{Where: where("address.city", str("Paris"))})
			return err
		}, codes.InvalidArgument, `property filter key "address.city" is a nested path`},
		call{"property filter with 5 MB of values", func() error {
			_, err := c.Search(ctx, &searchv1.SearchRequest{Where: where("name", str(strings.Repeat("v", 5<<20)))})
			return err
		}, codes.InvalidArgument, `property filter "name" value 0 is 5242880 characters long; the limit is 1000`},
		call{"property filter with 5 MB of small values", func() error {
			vs := make([]*structpb.Value, 400_000)
			for i := range vs {
				vs[i] = str("0123456789")
			}
			_, err := c.Search(ctx, &searchv1.SearchRequest{Where: where("name", vs...)})
			return err
		}, codes.InvalidArgument, "property filters may have at most 100 values in all"},
		call{"property filter with 10 MB of values: over GRPC_MAX_QUERY_MESSAGE_BYTES, refused unparsed", func() error {
			_, err := c.Search(ctx, &searchv1.SearchRequest{Where: where("name", str(strings.Repeat("v", 10<<20)))})
			return err
		}, codes.ResourceExhausted, "the limit is 8388608 (GRPC_MAX_QUERY_MESSAGE_BYTES"},
		call{"property filter with a list", func() error {
			_, err := c.Search(ctx, &searchv1.SearchRequest{Where: where("name", structpb.NewListValue(&structpb.ListValue{}))})
			return err
		}, codes.InvalidArgument, `property filter "name" value 0 is a list`},
		call{"property filter with null", func() error {
			_, err := c.Search(ctx, &searchv1.SearchRequest{Where: where("name", structpb.NewNullValue())})
			return err
		}, codes.InvalidArgument, `property filter "name" value 0 is null`},
	)
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(tc.do())
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.message) {
				t.Errorf("got %s %q, want %s %q", st.Code(), st.Message(), tc.code, tc.message)
			}
		})
	}
	// A key repeated within one import is rejected, the rest stored.
	stream, err := c.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sq := `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}`
	for _, name := range []string{"First", "Second"} {
		if err := stream.Send(&searchv1.ImportRequest{Options: nil, Name: name, Key: "same", GeometryGeojson: sq}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil || resp.GetImported() != 1 || len(resp.GetRejected()) != 1 || !strings.Contains(resp.GetRejected()[0].GetReason(), `key "same" is already used by feature 0 of this import`) {
		t.Errorf("repeated key: %v, %v", resp, err)
	}
	if _, err := c.DeleteThings(ctx, &searchv1.DeleteThingsRequest{Keys: []string{"same"}}); err != nil {
		t.Fatal(err)
	}
	// The fingerprint includes when each collection last changed, which the
	// import and delete above moved on; compare the things only.
	if after := servertest.Fingerprint(t, ts.DBURL); thingsOf(after) != thingsOf(before) {
		t.Errorf("bad input changed the store: %s -> %s", before, after)
	}
}

// countLines counts the lines of out that contain s.
func countLines(out, s string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// thingsOf is the part of a fingerprint about things and parts.
func thingsOf(fp string) string {
	parts := strings.SplitN(fp, ":", 4)
	return strings.Join(parts[:3], ":")
}

// TestCancelledReplaceKeepsTheOldCollectionServed starts a replace of the
// countries with another data set, searches all along, and cancels the
// replace half-way: every search finds France of the old collection, and
// the store ends as it was.
func TestCancelledReplaceKeepsTheOldCollectionServed(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, nil, true)
	ctx := context.Background()
	stream, err := ts.Client.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, rf := range geotest.LoadRaw(t, "ne_110m_countries.geojson") {
		req := &searchv1.ImportRequest{Name: rf.Name, Key: rf.Key, GeometryGeojson: string(rf.GeometryJSON)}
		if i == 0 {
			req.Options = &searchv1.ImportOptions{Collection: "countries"}
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	before := servertest.Fingerprint(t, ts.DBURL)

	var (
		wg       sync.WaitGroup
		stop     atomic.Bool
		searches atomic.Int64
		mu       sync.Mutex
		wrong    []string
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			resp, err := ts.Client.Search(ctx, &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 48.85, Lng: 2.35}, Collections: []string{"countries"}})
			searches.Add(1)
			if err != nil || len(resp.GetThings()) != 1 || resp.GetThings()[0].GetName() != "France" {
				mu.Lock()
				wrong = append(wrong, status.Convert(err).Message()+" "+resp.String())
				mu.Unlock()
			}
		}
	}()

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	replace, err := ts.Client.Import(rctx)
	if err != nil {
		t.Fatal(err)
	}
	// The replacement has no France; its features are sent, the stream is
	// left open, and then cancelled once the server has written them.
	for i, rf := range geotest.LoadRaw(t, "ne_50m_countries.geojson") {
		if rf.Name == "France" {
			continue
		}
		req := &searchv1.ImportRequest{Name: rf.Name, Key: rf.Key, GeometryGeojson: string(rf.GeometryJSON)}
		if i == 0 {
			req.Options = &searchv1.ImportOptions{Collection: "countries", Replace: true}
		}
		if err := replace.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	dbName := ts.DBURL[strings.LastIndex(ts.DBURL, "/")+1 : strings.Index(ts.DBURL, "?")]
	waitFor(t, "the replace to write", func(conn *pgx.Conn) bool { return writers(conn, dbName) > 0 }, ts.DBURL)
	cancel()
	waitFor(t, "the replace to end", func(conn *pgx.Conn) bool { return writers(conn, dbName) == 0 }, ts.DBURL)
	stop.Store(true)
	wg.Wait()
	if len(wrong) > 0 {
		t.Errorf("%d of %d searches during the cancelled replace did not find the old France; first: %s", len(wrong), searches.Load(), wrong[0])
	}
	if after := servertest.Fingerprint(t, ts.DBURL); after != before {
		t.Errorf("a cancelled replace changed the store: %s -> %s", before, after)
	}
}

// TestEveryServedMethodIsInTheAccessTable walks every service the real
// server registers (search, health, reflection): each method has an
// access class, so none is refused by default-deny by accident.
func TestEveryServedMethodIsInTheAccessTable(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, nil, true)
	n := 0
	for service, info := range ts.Srv.Parts().GRPC.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + service + "/" + m.Name
			n++
			if _, ok := grpcapi.MethodAccess(full); !ok {
				t.Errorf("%s is served but has no access class in internal/grpcapi/auth.go", full)
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d methods served; the walk found too little", n)
	}
}
