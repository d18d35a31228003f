package geo

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"
	"sync/atomic"
)

// Access is what an operation needs of its caller.
type Access int

// The access levels. The zero Access is Denied, so that an operation
// missing from a transport's table is refused.
const (
	Denied Access = iota // refused, whatever the token
	Open                 // no token: health and readiness
	Read                 // a read or write token, when read tokens are set
	Write                // a write token, when any token is set
)

func (a Access) String() string {
	switch a {
	case Open:
		return "open"
	case Read:
		return "read"
	case Write:
		return "write"
	default:
		return "denied"
	}
}

// The reasons Tokens.Check refuses a call; each transport words them in its
// own terms (gRPC metadata, an HTTP header).
var (
	ErrDenied        = errors.New("this call has no access class, so it is refused")
	ErrNoToken       = errors.New("this call needs a token")
	ErrInvalidToken  = errors.New("the token is not valid")
	ErrReadOnlyToken = errors.New("this call needs a write token; this token may only read")
)

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

type tokenSets struct{ read, write tokenSet }

// Tokens decides who may call what, for every transport alike, from the
// read and write bearer tokens, which can change while serving (Set). With
// no token configured every call is allowed. With any, writes need a write
// token; reads need a read or a write token when read tokens are set and
// are open otherwise. Tokens are compared as digests in constant time and
// never appear in errors.
type Tokens struct {
	sets atomic.Pointer[tokenSets]
}

// NewTokens returns Tokens accepting read and write.
func NewTokens(read, write []string) *Tokens {
	t := &Tokens{}
	t.Set(read, write)
	return t
}

// Set replaces the tokens for calls that start from now on.
func (t *Tokens) Set(read, write []string) {
	t.sets.Store(&tokenSets{read: newTokenSet(read), write: newTokenSet(write)})
}

// Enabled reports whether any token is configured.
func (t *Tokens) Enabled() bool {
	s := t.sets.Load()
	return len(s.read) > 0 || len(s.write) > 0
}

// Check returns nil when a call that needs need may go on with token
// (presented says whether the caller sent one), else ErrNoToken,
// ErrInvalidToken or ErrReadOnlyToken; ErrDenied whatever the token when
// need is Denied.
func (t *Tokens) Check(need Access, token string, presented bool) error {
	s := t.sets.Load()
	switch {
	case need == Denied:
		return ErrDenied
	case need == Open:
		return nil
	case need == Read && len(s.read) == 0:
		return nil
	case need == Write && len(s.read) == 0 && len(s.write) == 0:
		return nil
	}
	if !presented {
		return ErrNoToken
	}
	digest := sha256.Sum256([]byte(token))
	isWrite := s.write.has(digest)
	isRead := s.read.has(digest)
	switch {
	case isWrite:
		return nil
	case need == Read && isRead:
		return nil
	case isRead: // a valid read token on a write
		return ErrReadOnlyToken
	default:
		return ErrInvalidToken
	}
}

// BearerToken returns the token of an authorization value "Bearer <token>"
// (the scheme in any case), as both transports carry it: values are the
// call's authorization values (gRPC metadata, HTTP header), exactly one of
// which must be a bearer token.
func BearerToken(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", false
	}
	return token, true
}
