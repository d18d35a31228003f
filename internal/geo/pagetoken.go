package geo

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"unicode/utf8"
)

// A page token is opaque to clients: gRPC's next_page_token and the HTTP
// API's next links carry the same one. Inside, base64url without padding:
//
//	version (1 byte) | filter fingerprint (8 bytes) | last id (uvarint) | last name
//
// A nearest search (Filter.MaxDistanceM) is ordered by distance first; its
// tokens are version 2 and carry the last distance after the fingerprint,
// as the 8 bytes of its IEEE 754 bits. The store computes a thing's
// distance the same way on every page, so the keyset comparison is exact.
//
// The fingerprint ties a token to the filter it was issued for, so a token
// used with another search is refused rather than silently misapplied. It is
// not a signature: a forged token can only move the starting position within
// the caller's own search, because the cursor values are bound parameters.
// Unsigned tokens work on every instance without a shared secret.
const (
	pageTokenVersion        = 1
	nearestPageTokenVersion = 2
	maxPageTokenLen         = 4096
)

// filterFingerprint hashes the whole canonical filter, as JSON: every field
// of geo.Filter is in it without being listed here, and two filters that
// select the same things (collections or values in another order) share
// their tokens. f must be valid (JSON has no NaN).
func filterFingerprint(f Filter) uint64 {
	b, err := json.Marshal(f.Canonical())
	if err != nil {
		panic(fmt.Sprintf("geo: fingerprint of a filter that was not validated: %v", err))
	}
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}

// EncodePageToken returns the token of the page that starts after c in the
// results of f.
func EncodePageToken(f Filter, c Cursor) string {
	b := make([]byte, 0, 1+8+8+binary.MaxVarintLen64+len(c.Name))
	if f.MaxDistanceM > 0 {
		b = append(b, nearestPageTokenVersion)
		b = binary.BigEndian.AppendUint64(b, filterFingerprint(f))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.DistanceM))
	} else {
		b = append(b, pageTokenVersion)
		b = binary.BigEndian.AppendUint64(b, filterFingerprint(f))
	}
	b = binary.AppendUvarint(b, uint64(c.ID))
	b = append(b, c.Name...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodePageToken returns the cursor in tok, or an Invalid error if tok is
// malformed or was issued for another filter. param names the token in the
// caller's protocol (page_token, cursor), for the error message.
func DecodePageToken(tok string, f Filter, param string) (Cursor, error) {
	malformed := Errorf(Invalid, "%s is malformed; use the one a previous response gave", param)
	if len(tok) > maxPageTokenLen {
		return Cursor{}, malformed
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 1+8+1 || b[0] != pageTokenVersion && b[0] != nearestPageTokenVersion {
		return Cursor{}, malformed
	}
	if binary.BigEndian.Uint64(b[1:9]) != filterFingerprint(f) {
		return Cursor{}, Errorf(Invalid, "%s was issued for a different search; repeat the same filter with it", param)
	}
	var c Cursor
	rest := b[9:]
	if nearest := f.MaxDistanceM > 0; nearest != (b[0] == nearestPageTokenVersion) {
		return Cursor{}, malformed
	} else if nearest {
		if len(rest) < 8 {
			return Cursor{}, malformed
		}
		c.DistanceM = math.Float64frombits(binary.BigEndian.Uint64(rest))
		rest = rest[8:]
		if math.IsNaN(c.DistanceM) || math.IsInf(c.DistanceM, 0) || c.DistanceM < 0 {
			return Cursor{}, malformed
		}
	}
	id, n := binary.Uvarint(rest)
	if n <= 0 || id == 0 || id > math.MaxInt64 {
		return Cursor{}, malformed
	}
	name := rest[n:]
	if len(name) == 0 || !utf8.Valid(name) || bytes.IndexByte(name, 0) >= 0 {
		return Cursor{}, malformed
	}
	c.ID, c.Name = int64(id), string(name)
	return c, nil
}
