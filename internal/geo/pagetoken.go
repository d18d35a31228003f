package geo

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// A page token is opaque to clients: gRPC's next_page_token and the HTTP
// API's next links carry the same one. Inside, base64url without padding:
//
//	version (1 byte) | filter fingerprint (8 bytes) | last id (uvarint) | last name
//
// A nearest search (Filter.MaxDistanceM) is ordered by distance first; its
// tokens carry the last distance after the fingerprint, as the 8 bytes of
// its IEEE 754 bits. The store computes a thing's distance the same way on
// every page, so the keyset comparison is exact.
//
// Version 5 is a sorted search's (sorttoken.go).
//
// Versions 3 (nearest: 4) carry the fingerprint of fingerprint.go, stable
// across versions. Versions 1 (nearest: 2) carry the first release's
// (legacyFingerprint) and are still issued for the filters that release
// could express, so that its instances and this one read each other's
// tokens in the middle of a walk during a rolling deploy; every version is
// read.
//
// The fingerprint ties a token to the filter it was issued for, so a token
// used with another search is refused rather than silently misapplied. It is
// not a signature: a forged token can only move the starting position within
// the caller's own search, because the cursor values are bound parameters.
// Unsigned tokens work on every instance without a shared secret.
const (
	legacyPageTokenVersion        = 1
	legacyNearestPageTokenVersion = 2
	pageTokenVersion              = 3
	nearestPageTokenVersion       = 4
	maxPageTokenLen               = 4096
)

// issueLegacyTokens makes filters the first release could express get
// tokens of its versions (1 and 2). A release whose previous release reads
// versions 3 and 4 (this one does) may turn it off.
const issueLegacyTokens = true

// EncodePageToken returns the token of the page that starts after c in the
// results of f.
func EncodePageToken(f Filter, c Cursor) string {
	return encodePageToken(f, c, issueLegacyTokens)
}

func encodePageToken(f Filter, c Cursor, issueLegacy bool) string {
	fp, legacy := filterFingerprint(f)
	version := byte(pageTokenVersion)
	if legacy && issueLegacy {
		fp, version = legacyFingerprint(f), legacyPageTokenVersion
	}
	nearest := f.MaxDistanceM > 0
	if nearest {
		version++ // 2 or 4
	}
	b := make([]byte, 0, 1+8+8+binary.MaxVarintLen64+len(c.Name))
	b = append(b, version)
	b = binary.BigEndian.AppendUint64(b, fp)
	if nearest {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.DistanceM))
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
	if err == nil && len(b) >= 1+8+1 && b[0] == sortedPageTokenVersion {
		return Cursor{}, Errorf(Invalid, "%s was issued for a sorted search; repeat the same filter and sort with it", param)
	}
	if err != nil || len(b) < 1+8+1 || b[0] < legacyPageTokenVersion || b[0] > nearestPageTokenVersion {
		return Cursor{}, malformed
	}
	fp, legacy := filterFingerprint(f)
	if b[0] <= legacyNearestPageTokenVersion {
		if !legacy { // the first release could not have issued it for f
			fp = ^binary.BigEndian.Uint64(b[1:9])
		} else {
			fp = legacyFingerprint(f)
		}
	}
	if binary.BigEndian.Uint64(b[1:9]) != fp {
		return Cursor{}, Errorf(Invalid, "%s was issued for a different search; repeat the same filter with it", param)
	}
	var c Cursor
	rest := b[9:]
	if nearest := f.MaxDistanceM > 0; nearest != (b[0] == legacyNearestPageTokenVersion || b[0] == nearestPageTokenVersion) {
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
