package geo

import (
	"encoding/base64"
	"encoding/binary"
	"hash/fnv"
	"math"
	"unicode/utf8"
)

// A sorted search (Query.SortBy) pages by its sort keys' values, then id.
// Its tokens are version 5 (after pagetoken.go's 1 to 4), base64url
// without padding:
//
//	5 | fingerprint (8 bytes) | per key: kind (1 byte) [| length (uvarint) | text] | last id (uvarint)
//
// The fingerprint hashes the filter's fingerprint and the sort keys (each
// its direction byte, "+" or "-", its property and a NUL), so a token is
// refused with another filter or another order. A value's text follows its
// kind unless the kind is SortMissing. Searches without a sort keep the
// tokens of pagetoken.go unchanged.
const (
	sortedPageTokenVersion = 5
	// maxSortedPageTokenLen is larger than maxPageTokenLen: a token
	// carries whole property values, which are not bounded as names are.
	maxSortedPageTokenLen = 64 << 10
)

// sortFingerprint ties a sorted token to f and by.
func sortFingerprint(f Filter, by []SortKey) uint64 {
	h := fnv.New64a()
	fp, _ := filterFingerprint(f) // the stable one: sorted tokens are newer than the legacy ones
	_, _ = h.Write(binary.BigEndian.AppendUint64(nil, fp))
	for _, k := range by {
		dir := byte('+')
		if k.Desc {
			dir = '-'
		}
		_, _ = h.Write([]byte{dir})
		_, _ = h.Write([]byte(k.Property))
		_, _ = h.Write([]byte{0})
	}
	return h.Sum64()
}

// EncodeSortedPageToken returns the token of the page that starts after c
// in the results of f sorted by by; without sort keys it is
// EncodePageToken's.
func EncodeSortedPageToken(f Filter, by []SortKey, c Cursor) string {
	if len(by) == 0 {
		return EncodePageToken(f, c)
	}
	b := make([]byte, 0, 64)
	b = append(b, sortedPageTokenVersion)
	b = binary.BigEndian.AppendUint64(b, sortFingerprint(f, by))
	for _, v := range c.Sort {
		b = append(b, byte(v.Kind))
		if v.Kind != SortMissing {
			b = binary.AppendUvarint(b, uint64(len(v.Text)))
			b = append(b, v.Text...)
		}
	}
	b = binary.AppendUvarint(b, uint64(c.ID))
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeSortedPageToken returns the cursor in tok for f sorted by by, or an
// Invalid error if tok is malformed or was issued for another filter or
// order; without sort keys it is DecodePageToken.
func DecodeSortedPageToken(tok string, f Filter, by []SortKey, param string) (Cursor, error) {
	if len(by) == 0 {
		return DecodePageToken(tok, f, param)
	}
	malformed := Errorf(Invalid, "%s is malformed; use the one a previous response gave", param)
	if len(tok) > maxSortedPageTokenLen {
		return Cursor{}, malformed
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 1+8+1 {
		return Cursor{}, malformed
	}
	switch b[0] {
	case sortedPageTokenVersion:
	case legacyPageTokenVersion, legacyNearestPageTokenVersion, pageTokenVersion, nearestPageTokenVersion:
		return Cursor{}, Errorf(Invalid, "%s was issued for a different search; repeat the same filter and sort with it", param)
	default:
		return Cursor{}, malformed
	}
	if binary.BigEndian.Uint64(b[1:9]) != sortFingerprint(f, by) {
		return Cursor{}, Errorf(Invalid, "%s was issued for a different search; repeat the same filter and sort with it", param)
	}
	rest := b[9:]
	c := Cursor{Sort: make([]SortValue, len(by))}
	for i := range by {
		if len(rest) == 0 || SortKind(rest[0]) > SortBoolean {
			return Cursor{}, malformed
		}
		c.Sort[i].Kind, rest = SortKind(rest[0]), rest[1:]
		if c.Sort[i].Kind == SortMissing {
			continue
		}
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return Cursor{}, malformed
		}
		text := rest[k : k+int(n)]
		if !utf8.Valid(text) || !validSortText(c.Sort[i].Kind, string(text)) {
			return Cursor{}, malformed
		}
		c.Sort[i].Text, rest = string(text), rest[k+int(n):]
	}
	id, n := binary.Uvarint(rest)
	if n <= 0 || n != len(rest) || id == 0 || id > math.MaxInt64 {
		return Cursor{}, malformed
	}
	c.ID = int64(id)
	return c, nil
}

// validSortText reports whether text can be a value of kind, so that a
// forged token reaches the store with values it can read (a number is a
// JSON number, a boolean true or false, no text holds a NUL).
func validSortText(kind SortKind, text string) bool {
	for i := 0; i < len(text); i++ {
		if text[i] == 0 {
			return false
		}
	}
	switch kind {
	case SortNumber:
		return jsonNumber(text)
	case SortBoolean:
		return text == "true" || text == "false"
	}
	return true
}

// jsonNumber reports whether s is a number as JSON writes it.
func jsonNumber(s string) bool {
	i := 0
	digits := func() bool {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	if !digits() {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}
