package server_test

import (
	"context"
	"os"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/geosearch/search/internal/server/servertest"
)

// frozenV1 loads the released v1 contract: testdata/proto/search-v1.binpb,
// a buf image (a FileDescriptorSet) written when v1 was released, which
// make proto-check also uses for buf breaking.
func frozenV1(t *testing.T) *frozenContract {
	t.Helper()
	b, err := os.ReadFile("../../testdata/proto/search-v1.binpb")
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		t.Fatal(err)
	}
	return &frozenContract{t: t, files: files}
}

type frozenContract struct {
	t     *testing.T
	files interface {
		FindDescriptorByName(protoreflect.FullName) (protoreflect.Descriptor, error)
	}
}

func (f *frozenContract) message(name string) *dynamicpb.Message {
	f.t.Helper()
	d, err := f.files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		f.t.Fatalf("%s not in the frozen v1 descriptor: %v", name, err)
	}
	return dynamicpb.NewMessage(d.(protoreflect.MessageDescriptor))
}

func set(m *dynamicpb.Message, field string, v protoreflect.Value) {
	m.Set(m.Descriptor().Fields().ByName(protoreflect.Name(field)), v)
}

func get(m protoreflect.Message, field string) protoreflect.Value {
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(field)))
}

// TestOldClientsAreUnderstood sends messages built from the frozen v1
// descriptor, as a client compiled against v1 would, to the current server,
// and reads the answers with the same old descriptor.
func TestOldClientsAreUnderstood(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, nil, true)
	v1 := frozenV1(t)

	// Import, client-streaming, with v1 messages.
	stream, err := ts.Conn.NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true}, "/search.v1.SearchService/Import")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Old Square", "Old Twin"} {
		feature := v1.message("search.v1.ImportRequest")
		set(feature, "name", protoreflect.ValueOfString(name))
		set(feature, "geometry_geojson", protoreflect.ValueOfString(`{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]]]}`))
		if err := stream.SendMsg(feature); err != nil {
			t.Fatal(err)
		}
	}
	bad := v1.message("search.v1.ImportRequest")
	set(bad, "name", protoreflect.ValueOfString("Old Broken"))
	set(bad, "geometry_geojson", protoreflect.ValueOfString(`{"type":"Polygon"}`))
	if err := stream.SendMsg(bad); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	imported := v1.message("search.v1.ImportResponse")
	if err := stream.RecvMsg(imported); err != nil {
		t.Fatal(err)
	}
	if n := get(imported, "imported").Int(); n != 2 {
		t.Fatalf("imported %d with v1 messages, want 2", n)
	}
	// A v1 client counts rejections by listing them: with fewer problems
	// than a summary lists, it still gets every one.
	if n := get(imported, "rejected").List().Len(); n != 1 {
		t.Errorf("v1 import answered %d rejections, want the one bad feature listed", n)
	}

	// Search, unary.
	req := v1.message("search.v1.SearchRequest")
	point := v1.message("search.v1.Point")
	set(point, "lat", protoreflect.ValueOfFloat64(5))
	set(point, "lng", protoreflect.ValueOfFloat64(5))
	set(req, "point", protoreflect.ValueOfMessage(point))
	set(req, "query", protoreflect.ValueOfString("old"))
	set(req, "page_size", protoreflect.ValueOfInt32(1)) // every field must be understood: two match
	resp := v1.message("search.v1.SearchResponse")
	if err := ts.Conn.Invoke(context.Background(), "/search.v1.SearchService/Search", req, resp); err != nil {
		t.Fatal(err)
	}
	things := get(resp, "things").List()
	if things.Len() != 1 || get(things.Get(0).Message(), "name").String() != "Old Square" || get(resp, "next_page_token").String() == "" {
		t.Errorf("v1 search answered %v, want one page of one thing, Old Square, and a next page", resp)
	}
	bbox := get(things.Get(0).Message(), "bbox").Message()
	if get(bbox, "max_lng").Float() != 10 {
		t.Errorf("v1 bbox %v, want max_lng 10", bbox)
	}
}
