// The tokens of CQL2 text.

package cql2

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/geosearch/search/internal/geo"
)

type kind int

const (
	tEOF kind = iota
	tIdent
	tQuoted // "property"
	tString
	tNumber
	tOp // = <> < <= > >=
	tLParen
	tRParen
	tComma
)

type token struct {
	kind kind
	text string // as written, for errors; the value for strings and quoted names
	pos  int    // 1-based character position
}

// lex splits text into tokens.
func lex(text string) ([]token, error) {
	var toks []token
	pos := 1 // characters, not bytes
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		start := pos
		switch {
		case unicode.IsSpace(r):
			i += size
			pos++
			continue
		case r == '(' || r == ')' || r == ',':
			k := map[rune]kind{'(': tLParen, ')': tRParen, ',': tComma}[r]
			toks = append(toks, token{k, string(r), start})
			i++
			pos++
			continue
		case r == '=' || r == '<' || r == '>':
			op := string(r)
			if i+1 < len(text) && (text[i:i+2] == "<>" || text[i:i+2] == "<=" || text[i:i+2] == ">=") {
				op = text[i : i+2]
			}
			toks = append(toks, token{tOp, op, start})
			i += len(op)
			pos += len(op)
			continue
		case r == '\'' || r == '"':
			var b strings.Builder
			j := i + 1
			p := pos + 1
			closed := false
			for j < len(text) {
				c, n := utf8.DecodeRuneInString(text[j:])
				if c == r {
					if j+1 < len(text) && rune(text[j+1]) == r { // doubled: the quote itself
						b.WriteRune(r)
						j += 2
						p += 2
						continue
					}
					closed = true
					j++
					p++
					break
				}
				b.WriteRune(c)
				j += n
				p++
			}
			if !closed {
				return nil, syntaxError(start, "an unterminated quoted text starts here")
			}
			k := tString
			if r == '"' {
				k = tQuoted
			}
			toks = append(toks, token{k, b.String(), start})
			i, pos = j, p
			continue
		case r == '-' || r == '+' || r == '.' || (r >= '0' && r <= '9'):
			j := i + 1
			for j < len(text) && strings.IndexByte("0123456789.eE", text[j]) >= 0 ||
				j < len(text) && (text[j] == '-' || text[j] == '+') && (text[j-1] == 'e' || text[j-1] == 'E') {
				j++
			}
			toks = append(toks, token{tNumber, text[i:j], start})
			pos += j - i
			i = j
			continue
		case unicode.IsLetter(r) || r == '_':
			j := i
			for j < len(text) {
				c, n := utf8.DecodeRuneInString(text[j:])
				if !unicode.IsLetter(c) && !unicode.IsDigit(c) && c != '_' && c != ':' && c != '.' {
					break
				}
				j += n
				pos++
			}
			toks = append(toks, token{tIdent, text[i:j], start})
			i = j
			continue
		}
		return nil, syntaxError(start, fmt.Sprintf("unexpected character %q", r))
	}
	return append(toks, token{tEOF, "", pos}), nil
}

func syntaxError(pos int, what string) error {
	return geo.Errorf(geo.Invalid, "filter: syntax error at character %d: %s", pos, what)
}
