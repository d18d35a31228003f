package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geojson"
)

// Input is read strictly: what a client sends either means exactly one
// thing or is refused with a message naming the parameter, line or member
// at fault. Go's own parsers are lenient in ways a client of another
// language cannot predict (1_0 and 0x1p-2 are numbers to strconv, a ';'
// silently splits nothing in net/url, duplicate JSON keys keep the last),
// so every value that a client writes goes through these functions, and no
// error shows a Go type.

// maxEcho is the most characters of a client's value an error message
// repeats.
const maxEcho = 64

// echo quotes s for an error message, cut to maxEcho characters.
func echo(s string) string {
	if utf8.RuneCountInString(s) <= maxEcho {
		return strconv.Quote(s)
	}
	n := 0
	for i := range s {
		if n == maxEcho {
			return strconv.Quote(s[:i]) + fmt.Sprintf(" (cut; %d bytes in all)", len(s))
		}
		n++
	}
	return strconv.Quote(s)
}

// decimal is a number as JSON writes it (RFC 8259 section 6): no sign but
// minus, no leading zeros, no hex, no underscores, no Inf or NaN.
var decimal = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// parseNumber reads the value of parameter or member name as a finite
// decimal number.
func parseNumber(name, raw string) (float64, error) {
	if !decimal.MatchString(raw) {
		return 0, geo.Errorf(geo.Invalid, "%s must be a number, finite and written in decimal (such as -12.5 or 1e-3), got %s", name, echo(raw))
	}
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, geo.Errorf(geo.Invalid, "%s is out of range: %s", name, echo(raw))
	}
	return v, nil
}

// digits is a whole number written with decimal digits only.
var digits = regexp.MustCompile(`^-?[0-9]+$`)

// checkRawQuery refuses a query string that net/url would read other than
// as written: a ';' (Go drops the whole pair without a word) or a broken
// %-escape. The message names the parameter.
func checkRawQuery(raw string) error {
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		key, _, _ := strings.Cut(pair, "=")
		name := key
		if k, err := url.QueryUnescape(key); err == nil {
			name = k
		}
		if strings.Contains(pair, ";") {
			return geo.Errorf(geo.Invalid, "parameter %s contains ';': separate parameters with '&', and write a ';' inside a value as %%3B", echo(name))
		}
		if _, err := url.ParseQuery(pair); err != nil {
			return geo.Errorf(geo.Invalid, "parameter %s is not a valid percent-encoded value (a broken %%-escape)", echo(name))
		}
	}
	return nil
}

// errContentEncoding refuses a request body in a coding the server does
// not decode (gzip, say): read as it is, it would be garbage.
func errContentEncoding(coding string) error {
	return &protocolError{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %s is not accepted here; send the body uncompressed", echo(coding))}
}

// checkContentEncoding accepts a body with no Content-Encoding, or
// "identity".
func checkContentEncoding(r *http.Request) error {
	for _, v := range r.Header.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return errContentEncoding(c)
			}
		}
	}
	return nil
}

// objectReader reads one JSON object member by member from dec, refusing
// a member name given twice. For each member it calls member, which must
// consume the value (value, skip, or number).
type objectReader struct {
	dec  *json.Decoder
	what string // "line 3", "feature 2": where the object is, for messages
}

// errSyntax is a JSON syntax error; reading cannot go on after it.
type errSyntax struct{ err error }

func (e errSyntax) Error() string { return e.err.Error() }

func (e errSyntax) Unwrap() error { return e.err }

// syntax describes a json error without Go types.
func syntax(what string, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return errSyntax{geo.Errorf(geo.Invalid, "%s is not valid JSON: %s (at byte %d)", what, se.Error(), se.Offset)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errSyntax{geo.Errorf(geo.Invalid, "%s is not valid JSON: it ends in the middle of a value", what)}
	case errors.Is(err, errBodyTooLarge):
		return errSyntax{err}
	}
	var de *geo.Error
	if errors.As(err, &de) {
		return errSyntax{err}
	}
	return errSyntax{geo.Errorf(geo.Invalid, "%s is not valid JSON", what)}
}

// read reads an object whose first token is next. A member's error that
// leaves the JSON readable is returned after the whole object was read
// (so that other members, such as an id, are still seen); a syntax error
// at once.
func (o objectReader) read(member func(name string) error) error {
	tok, err := o.dec.Token()
	if err != nil {
		return syntax(o.what, err)
	}
	if tok != json.Delim('{') {
		if err := o.skipRest(tok); err != nil {
			return err
		}
		return geo.Errorf(geo.Invalid, "%s must be a JSON object, got %s", o.what, geojson.Kind(tok))
	}
	seen := map[string]bool{}
	var first error
	for o.dec.More() {
		tok, err := o.dec.Token()
		if err != nil {
			return syntax(o.what, err)
		}
		name, _ := tok.(string)
		if seen[name] {
			if err := o.skip(); err != nil {
				return err
			}
			if first == nil {
				first = geo.Errorf(geo.Invalid, "%s has the member %s twice", o.what, echo(name))
			}
			continue
		}
		seen[name] = true
		if err := member(name); err != nil {
			var se errSyntax
			if errors.As(err, &se) {
				return se.err
			}
			if first == nil {
				first = err
			}
		}
	}
	if _, err := o.dec.Token(); err != nil { // the closing brace
		return syntax(o.what, err)
	}
	return first
}

// skipRest consumes the rest of a value whose first token was tok.
func (o objectReader) skipRest(tok json.Token) error {
	d, ok := tok.(json.Delim)
	if !ok || d == '}' || d == ']' {
		return nil
	}
	for depth := 1; depth > 0; {
		t, err := o.dec.Token()
		if err != nil {
			return syntax(o.what, err)
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

// skip consumes one value.
func (o objectReader) skip() error {
	var v json.RawMessage
	if err := o.dec.Decode(&v); err != nil {
		return syntax(o.what, err)
	}
	return nil
}

// value decodes one value as any (numbers as json.Number).
func (o objectReader) value() (any, error) {
	var v any
	if err := o.dec.Decode(&v); err != nil {
		return nil, syntax(o.what, err)
	}
	return v, nil
}

// number reads one value that must be a finite number; name is the member
// for messages.
func (o objectReader) number(name string) (float64, error) {
	tok, err := o.dec.Token()
	if err != nil {
		return 0, syntax(o.what, err)
	}
	n, ok := tok.(json.Number)
	if !ok {
		if err := o.skipRest(tok); err != nil {
			return 0, err
		}
		return 0, geo.Errorf(geo.Invalid, "%s: %s must be a number, got %s", o.what, name, geojson.Kind(tok))
	}
	v, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, geo.Errorf(geo.Invalid, "%s: %s is out of range: %s", o.what, name, echo(n.String()))
	}
	return v, nil
}

// end checks that nothing but white space follows the value read.
func (o objectReader) end() error {
	if _, err := o.dec.Token(); !errors.Is(err, io.EOF) {
		return geo.Errorf(geo.Invalid, "%s has more after its JSON object; one object per line", o.what)
	}
	return nil
}

// newDecoder is a json.Decoder over b that keeps numbers as written.
func newDecoder(b []byte) *json.Decoder {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d
}
