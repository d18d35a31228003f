package geo

import (
	"context"
	"encoding/base64"
	"encoding/binary"
)

// Position is a point in the store's history of writes, which only moves
// forward (for PostgreSQL, a WAL location). A read that has seen Position p
// sees every write committed before p was taken.
type Position uint64

// ReadYourWrites is implemented by a store whose reads may lag behind its
// writes (reads on a replica): a writer takes the position after its write
// and a reader waits for it, so that a client that wrote and then reads
// sees its write on any instance.
type ReadYourWrites interface {
	// WritePosition returns a position at or after every write committed
	// before the call. Returns Unavailable or Timeout when the store's
	// writing side does not answer.
	WritePosition(ctx context.Context) (Position, error)
	// WaitFor returns once reads see every write before p. It returns
	// Unavailable when the reading side has not caught up within the
	// store's own bound, Timeout when ctx's deadline passes first.
	WaitFor(ctx context.Context, p Position) error
}

// A consistency token carries a Position to clients, opaque: base64url
// without padding of a version byte and the position (8 bytes, big endian).
const consistencyTokenVersion = 1

// EncodeConsistencyToken returns the token of p.
func EncodeConsistencyToken(p Position) string {
	var b [9]byte
	b[0] = consistencyTokenVersion
	binary.BigEndian.PutUint64(b[1:], uint64(p))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DecodeConsistencyToken returns the position token carries, or an Invalid
// error naming field when it is not a token this service issued.
func DecodeConsistencyToken(token, field string) (Position, error) {
	if len(token) != base64.RawURLEncoding.EncodedLen(9) {
		return 0, Errorf(Invalid, "%s is not a consistency token of this service; pass the consistency_token a write returned", field)
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 9 || b[0] != consistencyTokenVersion {
		return 0, Errorf(Invalid, "%s is not a consistency token of this service; pass the consistency_token a write returned", field)
	}
	return Position(binary.BigEndian.Uint64(b[1:])), nil
}
