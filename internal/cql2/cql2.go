// Package cql2 reads filters written in CQL2 text (OGC 21-065, the Common
// Query Language of OGC API – Features – Part 3) into a geo.Expr: the
// comparisons (=, <>, <, <=, >, >=), AND, OR, NOT, IN, LIKE, BETWEEN,
// IS [NOT] NULL, and S_INTERSECTS of the thing's geometry with a WKT or
// BBOX literal. A syntax error is an Invalid error naming its position.
//
// It is written by hand: the Go CQL2 parsers found (planetlabs/go-ogc's
// filter package, cwygoda/gocql2) are not served by the Go module proxy
// this project builds from.
package cql2

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"

	"github.com/geosearch/search/internal/geo"
)

// MaxTextLength is the longest filter read, in bytes.
const MaxTextLength = 64 << 10

// GeometryProperties are the names a filter may give the thing's geometry
// in S_INTERSECTS.
var GeometryProperties = []string{"geometry", "geom"}

// ParseText reads a CQL2 text filter. The expression it returns is
// validated (geo.Expr.Validate).
func ParseText(text string) (geo.Expr, error) {
	if len(text) > MaxTextLength {
		return geo.Expr{}, geo.Errorf(geo.Invalid, "filter is %d bytes long; the limit is %d", len(text), MaxTextLength)
	}
	if !utf8.ValidString(text) {
		return geo.Expr{}, geo.Errorf(geo.Invalid, "filter is not valid UTF-8")
	}
	toks, err := lex(text)
	if err != nil {
		return geo.Expr{}, err
	}
	p := &parser{toks: toks}
	e, err := p.or(0)
	if err != nil {
		return geo.Expr{}, err
	}
	if t := p.peek(); t.kind != tEOF {
		return geo.Expr{}, p.fail(t, "AND, OR or the end of the filter")
	}
	if err := e.Validate(); err != nil {
		return geo.Expr{}, err
	}
	return e, nil
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) fail(t token, want string) error {
	got := "the end of the filter"
	if t.kind != tEOF {
		got = strconv.Quote(t.text)
	}
	return syntaxError(t.pos, "expected "+want+", got "+got)
}

// keyword reports whether t is the keyword kw (case-insensitive).
func keyword(t token, kw string) bool { return t.kind == tIdent && strings.EqualFold(t.text, kw) }

func (p *parser) accept(kw string) bool {
	if keyword(p.peek(), kw) {
		p.i++
		return true
	}
	return false
}

func (p *parser) expect(k kind, want string) (token, error) {
	t := p.next()
	if t.kind != k {
		return t, p.fail(t, want)
	}
	return t, nil
}

func (p *parser) or(depth int) (geo.Expr, error) {
	if depth > geo.MaxExprDepth {
		return geo.Expr{}, geo.Errorf(geo.Invalid, "the filter nests deeper than %d levels", geo.MaxExprDepth)
	}
	first, err := p.and(depth)
	if err != nil {
		return first, err
	}
	list := []geo.Expr{first}
	for p.accept("OR") {
		e, err := p.and(depth)
		if err != nil {
			return e, err
		}
		list = append(list, e)
	}
	if len(list) == 1 {
		return first, nil
	}
	return geo.Expr{Or: list}, nil
}

func (p *parser) and(depth int) (geo.Expr, error) {
	first, err := p.not(depth)
	if err != nil {
		return first, err
	}
	list := []geo.Expr{first}
	for p.accept("AND") {
		e, err := p.not(depth)
		if err != nil {
			return e, err
		}
		list = append(list, e)
	}
	if len(list) == 1 {
		return first, nil
	}
	return geo.Expr{And: list}, nil
}

func (p *parser) not(depth int) (geo.Expr, error) {
	if p.accept("NOT") {
		e, err := p.not(depth + 1)
		return geo.Expr{Not: &e}, err
	}
	if p.peek().kind == tLParen {
		p.next()
		e, err := p.or(depth + 1)
		if err != nil {
			return e, err
		}
		_, err = p.expect(tRParen, `")"`)
		return e, err
	}
	return p.predicate()
}

// operand is a property or a literal of a comparison.
type operand struct {
	property string
	value    any
	tok      token
}

func (p *parser) operand() (operand, error) {
	t := p.next()
	switch {
	case t.kind == tQuoted:
		return operand{property: t.text, tok: t}, nil
	case t.kind == tString:
		return operand{value: t.text, tok: t}, nil
	case t.kind == tNumber:
		v, err := number(t)
		return operand{value: v, tok: t}, err
	case keyword(t, "TRUE"):
		return operand{value: true, tok: t}, nil
	case keyword(t, "FALSE"):
		return operand{value: false, tok: t}, nil
	case t.kind == tIdent && !reserved(t.text):
		return operand{property: t.text, tok: t}, nil
	}
	return operand{}, p.fail(t, "a property, a quoted 'text', a number, TRUE or FALSE")
}

func number(t token) (float64, error) {
	v, err := strconv.ParseFloat(t.text, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, syntaxError(t.pos, fmt.Sprintf("%q is not a finite number", t.text))
	}
	return v, nil
}

func reserved(s string) bool {
	switch strings.ToUpper(s) {
	case "AND", "OR", "NOT", "LIKE", "BETWEEN", "IN", "IS", "NULL", "TRUE", "FALSE":
		return true
	}
	return false
}

// flipped turns literal OP property into property OP' literal.
var flipped = map[string]string{"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

func (p *parser) predicate() (geo.Expr, error) {
	if keyword(p.peek(), "S_INTERSECTS") {
		return p.intersects()
	}
	left, err := p.operand()
	if err != nil {
		return geo.Expr{}, err
	}
	t := p.peek()
	if t.kind == tOp {
		p.next()
		right, err := p.operand()
		if err != nil {
			return geo.Expr{}, err
		}
		op := t.text
		switch {
		case left.property != "" && right.property == "":
		case left.property == "" && right.property != "":
			left, right, op = right, left, flipped[op]
		case left.property != "":
			return geo.Expr{}, syntaxError(left.tok.pos, "a comparison of two properties is not supported; compare a property with a value")
		default:
			return geo.Expr{}, syntaxError(left.tok.pos, "a comparison needs a property on one side")
		}
		return geo.Expr{Compare: &geo.Comparison{Property: left.property, Op: op, Value: right.value}}, nil
	}
	if left.property == "" {
		return geo.Expr{}, syntaxError(left.tok.pos, "LIKE, BETWEEN, IN and IS NULL apply to a property, not to a value")
	}
	if p.accept("IS") {
		negate := p.accept("NOT")
		if !p.accept("NULL") {
			return geo.Expr{}, p.fail(p.peek(), "NULL")
		}
		return maybeNot(geo.Expr{IsNull: left.property}, negate), nil
	}
	negate := p.accept("NOT")
	switch {
	case p.accept("LIKE"):
		t, err := p.expect(tString, "a quoted 'pattern'")
		if err != nil {
			return geo.Expr{}, err
		}
		return maybeNot(geo.Expr{Like: &geo.LikePattern{Property: left.property, Pattern: t.text}}, negate), nil
	case p.accept("BETWEEN"):
		lo, err := p.numberLiteral()
		if err != nil {
			return geo.Expr{}, err
		}
		if !p.accept("AND") {
			return geo.Expr{}, p.fail(p.peek(), "AND")
		}
		hi, err := p.numberLiteral()
		if err != nil {
			return geo.Expr{}, err
		}
		return maybeNot(geo.Expr{Between: &geo.Range{Property: left.property, Low: lo, High: hi}}, negate), nil
	case p.accept("IN"):
		if _, err := p.expect(tLParen, `"(" and the values`); err != nil {
			return geo.Expr{}, err
		}
		var vs []any
		for {
			v, err := p.operand()
			if err != nil {
				return geo.Expr{}, err
			}
			if v.property != "" {
				return geo.Expr{}, syntaxError(v.tok.pos, "IN takes values, not properties")
			}
			vs = append(vs, v.value)
			if len(vs) > geo.MaxExprNodes {
				return geo.Expr{}, geo.Errorf(geo.Invalid, "IN has more than %d values", geo.MaxExprNodes)
			}
			if p.peek().kind == tComma {
				p.next()
				continue
			}
			if _, err := p.expect(tRParen, `"," or ")"`); err != nil {
				return geo.Expr{}, err
			}
			break
		}
		return maybeNot(geo.Expr{In: &geo.InList{Property: left.property, Values: vs}}, negate), nil
	}
	return geo.Expr{}, p.fail(p.peek(), "a comparison (= <> < <= > >=), LIKE, BETWEEN, IN or IS NULL")
}

func (p *parser) numberLiteral() (float64, error) {
	t, err := p.expect(tNumber, "a number")
	if err != nil {
		return 0, err
	}
	return number(t)
}

func maybeNot(e geo.Expr, negate bool) geo.Expr {
	if negate {
		return geo.Expr{Not: &e}
	}
	return e
}

// intersects reads S_INTERSECTS(geometry, literal), either way round.
func (p *parser) intersects() (geo.Expr, error) {
	p.next()
	if _, err := p.expect(tLParen, `"("`); err != nil {
		return geo.Expr{}, err
	}
	var lit geom.T
	sawProperty := false
	for i := range 2 {
		if i == 1 {
			if _, err := p.expect(tComma, `","`); err != nil {
				return geo.Expr{}, err
			}
		}
		t := p.peek()
		if (t.kind == tIdent || t.kind == tQuoted) && isGeometryProperty(t.text) && !sawProperty {
			p.next()
			sawProperty = true
			continue
		}
		if lit != nil || t.kind != tIdent || !geometryKeywords[strings.ToUpper(t.text)] {
			return geo.Expr{}, p.fail(t, "the geometry property ("+strings.Join(GeometryProperties, " or ")+") and a geometry literal (POINT, LINESTRING, POLYGON, MULTI..., BBOX)")
		}
		g, err := p.geometry()
		if err != nil {
			return geo.Expr{}, err
		}
		lit = g
	}
	if _, err := p.expect(tRParen, `")"`); err != nil {
		return geo.Expr{}, err
	}
	if !sawProperty || lit == nil {
		return geo.Expr{}, geo.Errorf(geo.Invalid, "S_INTERSECTS takes the geometry property and one geometry literal")
	}
	b, err := geojson.Marshal(lit)
	if err != nil {
		return geo.Expr{}, geo.Errorf(geo.Invalid, "the geometry of S_INTERSECTS: %v", err)
	}
	return geo.Expr{Intersects: string(b)}, nil
}
