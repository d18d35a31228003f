package grpcapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// access is what a method needs.
type access int

const (
	open  access = iota // no token: the health service
	read                // a read or write token, when READ_TOKENS is set
	write               // a write token, when any token is set
)

// importMethod is the one method that writes.
const importMethod = "/search.v1.SearchService/Import"

// methodAccess classifies a method. Health stays open because Consul's gRPC
// check cannot send a token, and it tells only SERVING or NOT_SERVING.
// Everything else, reflection included, is a read; a method added later is
// therefore never open by accident.
func methodAccess(fullMethod string) access {
	switch {
	case fullMethod == importMethod:
		return write
	case strings.HasPrefix(fullMethod, healthPrefix):
		return open
	default:
		return read
	}
}

// tokenSet holds SHA-256 digests of tokens: comparing digests of equal
// length in constant time reveals neither a token's bytes nor its length.
type tokenSet [][sha256.Size]byte

func newTokenSet(tokens []string) tokenSet {
	var s tokenSet
	for _, t := range tokens {
		if t != "" {
			s = append(s, sha256.Sum256([]byte(t)))
		}
	}
	return s
}

// has reports whether digest is in the set, comparing with every member so
// that the time taken does not depend on which one matches.
func (s tokenSet) has(digest [sha256.Size]byte) bool {
	found := 0
	for i := range s {
		found |= subtle.ConstantTimeCompare(s[i][:], digest[:])
	}
	return found == 1
}

type tokens struct{ read, write tokenSet }

// Auth checks the bearer tokens of calls against READ_TOKENS and
// WRITE_TOKENS, which can change while serving (Set). With no token
// configured every call is allowed. With any, Import needs a write token;
// reads need a read or a write token when READ_TOKENS is set and are open
// otherwise. Tokens are compared as digests in constant time and never
// appear in errors or logs.
type Auth struct {
	tokens atomic.Pointer[tokens]
}

// NewAuth returns an Auth with cfg's tokens.
func NewAuth(cfg Config) *Auth {
	a := &Auth{}
	a.Set(cfg)
	return a
}

// Set replaces the tokens for calls that start from now on.
func (a *Auth) Set(cfg Config) {
	a.tokens.Store(&tokens{read: newTokenSet(cfg.ReadTokens), write: newTokenSet(cfg.WriteTokens)})
}

// Enabled reports whether any token is configured.
func (a *Auth) Enabled() bool {
	t := a.tokens.Load()
	return len(t.read) > 0 || len(t.write) > 0
}

// check returns nil when the call may go on, else an Unauthenticated or
// PermissionDenied status.
func (a *Auth) check(ctx context.Context, fullMethod string) error {
	need := methodAccess(fullMethod)
	t := a.tokens.Load()
	switch {
	case need == open:
		return nil
	case need == read && len(t.read) == 0:
		return nil
	case need == write && len(t.read) == 0 && len(t.write) == 0:
		return nil
	}
	presented, ok := bearerToken(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, `this call needs a token: send metadata "authorization: Bearer <token>"`)
	}
	digest := sha256.Sum256([]byte(presented))
	isWrite := t.write.has(digest)
	isRead := t.read.has(digest)
	switch {
	case isWrite:
		return nil
	case need == read && isRead:
		return nil
	case isRead: // a valid read token on Import
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
