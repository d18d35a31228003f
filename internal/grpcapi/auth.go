package grpcapi

import (
	"context"
	"errors"
	"net"
	"path"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
)

// Access is what a method needs: geo's access levels, which the HTTP API
// shares.
type Access = geo.Access

// The access classes. The zero Access is Denied, so that a method missing
// from the table is refused.
const (
	Denied = geo.Denied // not in the table: refused, whatever the token
	Open   = geo.Open   // no token: the health service
	Read   = geo.Read   // a read or write token, when READ_TOKENS is set
	Write  = geo.Write  // a write token, when any token is set
)

// methodAccess is the complete table of the methods this server serves and
// the access each needs (default-deny: a method not listed is refused). A
// test walks the registered services and fails for a method missing here.
// Health stays open because Consul's gRPC check cannot send a token, and it
// tells only SERVING or NOT_SERVING. Reflection describes the API, which is
// public in proto/, but still needs a read token when reads do.
var methodAccess = map[string]Access{
	searchv1.SearchService_Search_FullMethodName:           Read,
	searchv1.SearchService_SearchStream_FullMethodName:     Read,
	searchv1.SearchService_Monitor_FullMethodName:          Read,
	searchv1.SearchService_GetThing_FullMethodName:         Read,
	searchv1.SearchService_ListCollections_FullMethodName:  Read,
	searchv1.SearchService_Locate_FullMethodName:           Read,
	searchv1.SearchService_Import_FullMethodName:           Write, // replace imports included
	searchv1.SearchService_DeleteThings_FullMethodName:     Write,
	searchv1.SearchService_DeleteCollection_FullMethodName: Write,
	searchv1.SearchService_Track_FullMethodName:            Write, // stores device states and events
	searchv1.SearchService_WatchEvents_FullMethodName:      Read,

	healthpb.Health_Check_FullMethodName: Open,
	healthpb.Health_Watch_FullMethodName: Open,
	healthpb.Health_List_FullMethodName:  Open,

	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      Read,
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: Read,
}

// MethodAccess returns the access fullMethod needs, and false when it is not
// in the table (Denied).
func MethodAccess(fullMethod string) (Access, bool) {
	a, ok := methodAccess[fullMethod]
	return a, ok
}

// Auth checks the bearer tokens of calls with geo.Tokens, which the HTTP
// API shares (READ_TOKENS and WRITE_TOKENS, changeable while serving: Set),
// after the method's access in methodAccess. A method missing from that
// table is refused. Tokens are compared as digests in constant time and
// never appear in errors or logs.
//
// With no token set, writes are open only where the listener is loopback
// or ALLOW_OPEN_WRITES says so (OpenWrites).
type Auth struct {
	tokens     *geo.Tokens
	openWrites bool
	listenAddr string
}

// NewAuth returns an Auth with cfg's tokens.
func NewAuth(cfg Config) *Auth {
	return &Auth{
		tokens:     geo.NewTokens(cfg.ReadTokens, cfg.WriteTokens),
		openWrites: cfg.AllowOpenWrites || Loopback(cfg.ListenAddr),
		listenAddr: cfg.ListenAddr,
	}
}

// OpenWrites reports whether writes may run without a token while no token
// is set: on a loopback listener, or with ALLOW_OPEN_WRITES.
func (a *Auth) OpenWrites() bool { return a.openWrites }

// Loopback reports whether addr (host:port) listens on loopback only: its
// host is localhost or a loopback IP. An empty host (":50051") is every
// interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Set replaces the tokens for calls that start from now on, on every
// transport that shares them.
func (a *Auth) Set(cfg Config) { a.tokens.Set(cfg.ReadTokens, cfg.WriteTokens) }

// Enabled reports whether any token is configured.
func (a *Auth) Enabled() bool { return a.tokens.Enabled() }

// Tokens returns the token check, for the other transports to share.
func (a *Auth) Tokens() *geo.Tokens { return a.tokens }

// check returns nil when the call may go on, else an Unauthenticated or
// PermissionDenied status.
func (a *Auth) check(ctx context.Context, fullMethod string) error {
	need := methodAccess[fullMethod]
	if need == Write && !a.openWrites && !a.tokens.Enabled() {
		return status.Errorf(codes.PermissionDenied, "%s is a write, and this server takes no writes without a token on a listener other hosts reach (LISTEN_ADDR=%s): set WRITE_TOKENS (and TLS), or ALLOW_OPEN_WRITES=true to take writes from anyone who reaches it",
			path.Base(fullMethod), a.listenAddr)
	}
	presented, ok := bearerToken(ctx)
	err := a.tokens.Check(need, presented, ok)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, geo.ErrDenied):
		return status.Errorf(codes.PermissionDenied, "%s has no access class in this server's table, so it is refused", fullMethod)
	case errors.Is(err, geo.ErrNoToken):
		return status.Error(codes.Unauthenticated, `this call needs a token: send metadata "authorization: Bearer <token>"`)
	case errors.Is(err, geo.ErrReadOnlyToken):
		return status.Errorf(codes.PermissionDenied, "%s needs a write token; this token may only read", path.Base(fullMethod))
	default:
		return status.Error(codes.Unauthenticated, "the token is not valid")
	}
}

// bearerToken returns the token of the call's "authorization: Bearer"
// metadata.
func bearerToken(ctx context.Context) (string, bool) {
	return geo.BearerToken(metadata.ValueFromIncomingContext(ctx, "authorization"))
}

func (a *Auth) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *Auth) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// BearerToken is the client side: per-call credentials that send token as
// "authorization: Bearer <token>". They refuse to travel without TLS.
type BearerToken string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t BearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: a token
// sent in clear text is a token given away.
func (BearerToken) RequireTransportSecurity() bool { return true }
