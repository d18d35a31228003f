package grpcapi

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// tokenField is the name of the consistency token in the contract: in a
// response, the write's position; in a request (or its options, for
// Locate), the position the read waits for.
const tokenField = "consistency_token"

// consistencyMethod says where a method's messages carry a consistency
// token: in (a path of fields from the request) and out (a field of the
// response); nil when they do not.
type consistencyMethod struct {
	in     []protoreflect.FieldDescriptor
	inName string // the path, for error messages
	out    protoreflect.FieldDescriptor
}

// consistencyMethods walks the service descriptor, so that a method whose
// messages gain the field is covered without being listed here.
func consistencyMethods() map[string]consistencyMethod {
	sd := searchv1.File_search_v1_search_proto.Services().ByName("SearchService")
	out := map[string]consistencyMethod{}
	methods := sd.Methods()
	for i := range methods.Len() {
		md := methods.Get(i)
		var cm consistencyMethod
		if fd := tokenFieldOf(md.Input()); fd != nil {
			cm.in, cm.inName = []protoreflect.FieldDescriptor{fd}, tokenField
		} else {
			fields := md.Input().Fields()
			for j := range fields.Len() {
				f := fields.Get(j)
				if f.Kind() == protoreflect.MessageKind && !f.IsList() && !f.IsMap() {
					if fd := tokenFieldOf(f.Message()); fd != nil {
						cm.in, cm.inName = []protoreflect.FieldDescriptor{f, fd}, string(f.Name())+"."+tokenField
						break
					}
				}
			}
		}
		cm.out = tokenFieldOf(md.Output())
		if cm.in != nil || cm.out != nil {
			out["/"+string(sd.FullName())+"/"+string(md.Name())] = cm
		}
	}
	return out
}

func tokenFieldOf(md protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	fd := md.Fields().ByName(tokenField)
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return nil
	}
	return fd
}

// consistency gives the tokens their meaning: a write's response gets the
// store's write position after the write, and a read whose request carries
// a token waits, before the handler runs, until the store reads at that
// position. Reads without a token do not wait, and a store that does not
// lag answers at once.
type consistency struct {
	rw      geo.ReadYourWrites
	methods map[string]consistencyMethod
	logger  *slog.Logger
}

// ConsistencyOptions returns the interceptors that implement consistency
// tokens with rw (see search.proto's consistency_token fields). Add them
// after ServerOptions: they run inside its interceptors, after
// authentication, and their errors are mapped as the handlers' are.
func ConsistencyOptions(rw geo.ReadYourWrites, logger *slog.Logger) []grpc.ServerOption {
	c := &consistency{rw: rw, methods: consistencyMethods(), logger: logger}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(c.unary), grpc.ChainStreamInterceptor(c.stream)}
}

func (c *consistency) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	cm, ok := c.methods[info.FullMethod]
	if !ok {
		return handler(ctx, req)
	}
	ctx, _ = geo.WithReadMark(ctx)
	if err := c.await(ctx, cm, req); err != nil {
		return nil, err
	}
	resp, err := handler(ctx, req)
	if err == nil {
		c.stamp(ctx, cm, resp)
	}
	return resp, err
}

func (c *consistency) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	cm, ok := c.methods[info.FullMethod]
	if !ok {
		return handler(srv, ss)
	}
	ctx, _ := geo.WithReadMark(ss.Context())
	return handler(srv, &consistencyStream{ServerStream: ss, c: c, cm: cm, ctx: ctx})
}

// consistencyStream waits for the token of the stream's first message (a
// later one may not carry options) and stamps what it sends.
type consistencyStream struct {
	grpc.ServerStream
	c        *consistency
	cm       consistencyMethod
	received bool
	ctx      context.Context // the stream's, with a ReadMark
}

// Context is the stream's context, carrying the mark its token's wait sets.
func (s *consistencyStream) Context() context.Context { return s.ctx }

func (s *consistencyStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.received {
		return nil
	}
	s.received = true
	return s.c.await(s.ctx, s.cm, m)
}

func (s *consistencyStream) SendMsg(m any) error {
	s.c.stamp(s.Context(), s.cm, m)
	return s.ServerStream.SendMsg(m)
}

// await waits for the position req's token names, if it names one, and
// then records it in ctx's ReadMark: the handler's reads must see the
// token's write (geo.ReadAfter).
func (c *consistency) await(ctx context.Context, cm consistencyMethod, req any) error {
	if cm.in == nil {
		return nil
	}
	msg, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	m := msg.ProtoReflect()
	for _, fd := range cm.in[:len(cm.in)-1] {
		if !m.Has(fd) {
			return nil
		}
		m = m.Get(fd).Message()
	}
	return core.AwaitToken(ctx, c.rw, m.Get(cm.in[len(cm.in)-1]).String(), cm.inName)
}

// stamp sets resp's token to the write position now, after the write. The
// write is committed whatever happens here: when the position cannot be
// read, the token stays empty (no guarantee) rather than the call failing
// and its client retrying a write that took place.
func (c *consistency) stamp(ctx context.Context, cm consistencyMethod, resp any) {
	msg, ok := resp.(proto.Message)
	if cm.out == nil || !ok {
		return
	}
	p, err := c.rw.WritePosition(ctx)
	if err != nil {
		c.logger.WarnContext(ctx, "cannot read the write position; answering without a consistency token", "error", err.Error())
		return
	}
	msg.ProtoReflect().Set(cm.out, protoreflect.ValueOfString(geo.EncodeConsistencyToken(p)))
}
