package grpcapi

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// Message limits per method. grpc-go has one receive limit per server
// (GRPC_MAX_MESSAGE_BYTES), which must fit Import's messages: one feature
// each, up to a million vertices. Every other request (a search, a batch
// of points, a page token) is small, and parsing a 40 MB Search area only
// to refuse it costs hundreds of megabytes of memory. So the server's codec
// refuses, before parsing, any request message other than Import's above
// GRPC_MAX_QUERY_MESSAGE_BYTES, and the interceptors below answer the call
// with RESOURCE_EXHAUSTED. (A codec error itself would reach the client as
// INTERNAL: grpc-go wraps it.)

// importMessage is the request message allowed up to MaxMessageBytes.
var importMessage = (&searchv1.ImportRequest{}).ProtoReflect().Descriptor().FullName()

// limitCodec is the proto codec with a size check per message type.
type limitCodec struct {
	encoding.CodecV2
	importLimit, queryLimit int
	// refused holds the messages left unparsed (by pointer) and their
	// size, until the interceptor of their call takes them out.
	refused sync.Map
}

func newLimitCodec(cfg Config) *limitCodec {
	c := &limitCodec{
		CodecV2:     encoding.GetCodecV2("proto"),
		importLimit: cfg.MaxMessageBytes,
		queryLimit:  min(cfg.MaxQueryMessageBytes, cfg.MaxMessageBytes),
	}
	if cfg.MaxQueryMessageBytes <= 0 { // not configured: one limit
		c.queryLimit = cfg.MaxMessageBytes
	}
	return c
}

// limit is the most bytes a message of v's type may have.
func (c *limitCodec) limit(v any) int {
	if m, ok := v.(proto.Message); ok && m.ProtoReflect().Descriptor().FullName() == importMessage {
		return c.importLimit
	}
	return c.queryLimit
}

// Unmarshal leaves a message over its limit empty and records it. A
// LocateRequest of the bulk form is decoded by decodeLocatePoints (no
// allocation per point), anything else by the proto codec, as that codec
// does it (its bytes in one pooled buffer, proto.Unmarshal).
func (c *limitCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if n := data.Len(); n > c.limit(v) {
		c.refused.Store(v, n)
		return nil
	}
	if m, ok := v.(*searchv1.LocateRequest); ok {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		if decodeLocatePoints(buf.ReadOnlyData(), m) {
			return nil
		}
		return proto.Unmarshal(buf.ReadOnlyData(), m)
	}
	return c.CodecV2.Unmarshal(data, v)
}

// check returns RESOURCE_EXHAUSTED if msg was left unparsed.
func (c *limitCodec) check(msg any) error {
	n, ok := c.refused.LoadAndDelete(msg)
	if !ok {
		return nil
	}
	name := protoreflect.FullName("")
	if m, ok := msg.(proto.Message); ok {
		name = m.ProtoReflect().Descriptor().FullName()
	}
	return status.Errorf(codes.ResourceExhausted,
		"the %s message is %d bytes; the limit is %d (GRPC_MAX_QUERY_MESSAGE_BYTES; only Import's messages may be up to GRPC_MAX_MESSAGE_BYTES)",
		name.Name(), n, c.limit(msg))
}

func (c *limitCodec) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := c.check(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (c *limitCodec) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &limitedStream{ServerStream: ss, codec: c})
}

// limitedStream refuses a received message the codec left unparsed.
type limitedStream struct {
	grpc.ServerStream
	codec *limitCodec
}

func (s *limitedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.codec.check(m)
}
