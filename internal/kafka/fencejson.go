package kafka

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/geosearch/search/internal/geo"
)

// The events and positions topics carry JSON (EventJSON, PositionJSON).
// encoding/json's reflection was the largest cost per position of the
// pipeline after the database (docs/GEOFENCE.md, Throughput), so the
// relay writes events, and the consumer reads positions, by hand in the
// common case and through encoding/json otherwise. Both give exactly
// encoding/json's result: the bytes json.Marshal writes, the values (or
// the error) json.Unmarshal returns. fencejson_test.go compares them.

// eventJSONBytes is about the most bytes AppendEvent writes for an event
// beside its strings (names, quotes, numbers, time).
const eventJSONBytes = 200

// AppendEvent appends e's record value, json.Marshal(NewEventJSON(e)), to
// dst.
func AppendEvent(dst []byte, e geo.Event) ([]byte, error) {
	at := e.Time.UTC()
	if y := at.Year(); y < 0 || y > 9999 || !plainFloat(e.Point.Lat) || !plainFloat(e.Point.Lng) {
		// json.Marshal's error (a year out of range, NaN, infinity) or
		// its exponent form.
		b, err := json.Marshal(NewEventJSON(e))
		return append(dst, b...), err
	}
	dst = append(dst, `{"device":`...)
	dst = appendString(dst, e.Device)
	dst = append(dst, `,"type":"`...)
	dst = append(dst, e.Type.String()...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendInt(dst, e.Seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = at.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","id":`...)
	dst = strconv.AppendInt(dst, e.Thing.ID, 10)
	dst = append(dst, `,"key":`...)
	dst = appendString(dst, e.Thing.Key)
	dst = append(dst, `,"collection":`...)
	dst = appendString(dst, e.Collection)
	dst = append(dst, `,"lat":`...)
	dst = strconv.AppendFloat(dst, e.Point.Lat, 'f', -1, 64)
	dst = append(dst, `,"lng":`...)
	dst = strconv.AppendFloat(dst, e.Point.Lng, 'f', -1, 64)
	return append(dst, '}'), nil
}

// plainFloat reports whether json.Marshal writes f with strconv's 'f'
// format (finite, and 0 or of magnitude within [1e-6, 1e21)).
func plainFloat(f float64) bool {
	abs := math.Abs(f)
	return abs == 0 || abs >= 1e-6 && abs < 1e21
}

// appendString appends s as json.Marshal writes a string: quoted, with
// ", \, control characters, <, > and & escaped, invalid UTF-8 replaced and
// U+2028 and U+2029 escaped. Strings of printable ASCII without those are
// copied; others go through json.Marshal.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// decodePositionFast reads a position written as EncodePosition writes
// it: one object of the five fields, each at most once, no white space,
// strings without escapes, numbers ParseFloat takes. ok is false for
// anything else, which json.Unmarshal then reads (and words the error of);
// hasLat and hasLng say whether lat and lng were there.
func decodePositionFast(value []byte) (f geo.Fix, hasLat, hasLng, ok bool) {
	if len(value) < 2 || value[0] != '{' || value[len(value)-1] != '}' {
		return f, false, false, false
	}
	rest := value[1 : len(value)-1]
	var seen [5]bool
	for len(rest) > 0 {
		key, val, next, ok := nextMember(rest)
		if !ok {
			return f, false, false, false
		}
		rest = next
		field := -1
		switch string(key) {
		case "device":
			field = 0
			f.Device, ok = plainString(val)
		case "collection":
			field = 1
			f.Collection, ok = plainString(val)
		case "lat":
			field = 2
			f.Point.Lat, ok = plainNumber(val)
		case "lng":
			field = 3
			f.Point.Lng, ok = plainNumber(val)
		case "time":
			field = 4
			ok = len(val) > 0 && val[0] == '"' && f.Time.UnmarshalJSON(val) == nil
		}
		if field < 0 || !ok || seen[field] {
			return f, false, false, false
		}
		seen[field] = true
	}
	return f, seen[2], seen[3], true
}

// nextMember splits `"key":value,rest` (or `"key":value` at the end) of
// an object without white space; the value is a string without escapes or
// a token up to the next comma.
func nextMember(b []byte) (key, val, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != '"' {
		return nil, nil, nil, false
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 {
		return nil, nil, nil, false
	}
	key, b = b[1:1+end], b[2+end:]
	if len(b) == 0 || b[0] != ':' {
		return nil, nil, nil, false
	}
	b = b[1:]
	var n int
	if len(b) > 0 && b[0] == '"' {
		q := bytes.IndexByte(b[1:], '"')
		if q < 0 {
			return nil, nil, nil, false
		}
		n = q + 2
	} else if n = bytes.IndexByte(b, ','); n < 0 {
		n = len(b)
	}
	val, b = b[:n], b[n:]
	if len(b) > 0 {
		if b[0] != ',' || len(b) == 1 {
			return nil, nil, nil, false
		}
		b = b[1:]
	}
	return key, val, b, true
}

// plainString is a quoted string of valid UTF-8 without escapes or
// control characters, unquoted.
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	s := b[1 : len(b)-1]
	for _, c := range s {
		if c < 0x20 || c == '\\' || c == '"' {
			return "", false
		}
	}
	if !utf8.Valid(s) {
		return "", false
	}
	return string(s), true
}

// plainNumber is a JSON number (-?int frac? exp?) that ParseFloat reads
// without error.
func plainNumber(b []byte) (float64, bool) {
	i := 0
	digits := func() int {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if n := digits(); n == 0 || n > 1 && b[i-n] == '0' {
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, false
		}
	}
	if i != len(b) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	return f, err == nil
}
