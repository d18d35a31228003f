package grpcapi

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/geosearch/search/internal/geo"
)

// importMethod is the one method that writes.
const importMethod = "/search.v1.SearchService/Import"

// methodAccess classifies a method. Health stays open because Consul's gRPC
// check cannot send a token, and it tells only SERVING or NOT_SERVING.
// Everything else, reflection included, is a read; a method added later is
// therefore never open by accident.
func methodAccess(fullMethod string) geo.Access {
	switch {
	case fullMethod == importMethod:
		return geo.Write
	case strings.HasPrefix(fullMethod, healthPrefix):
		return geo.Open
	default:
		return geo.Read
	}
}

// Auth checks the bearer tokens of calls with geo.Tokens, which the HTTP
// API shares: READ_TOKENS and WRITE_TOKENS, changeable while serving (Set).
type Auth struct {
	tokens *geo.Tokens
}

// NewAuth returns an Auth with cfg's tokens.
func NewAuth(cfg Config) *Auth {
	return &Auth{tokens: geo.NewTokens(cfg.ReadTokens, cfg.WriteTokens)}
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
	presented, ok := bearerToken(ctx)
	err := a.tokens.Check(methodAccess(fullMethod), presented, ok)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, geo.ErrNoToken):
		return status.Error(codes.Unauthenticated, `this call needs a token: send metadata "authorization: Bearer <token>"`)
	case errors.Is(err, geo.ErrReadOnlyToken):
		return status.Error(codes.PermissionDenied, "Import needs a write token; this token may only read")
	default:
		return status.Error(codes.Unauthenticated, "the token is not valid")
	}
}

// bearerToken returns the token of the call's "authorization: Bearer"
// metadata.
func bearerToken(ctx context.Context) (string, bool) {
	values := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", false
	}
	return token, true
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
