package postgis

import (
	"encoding/json"
	"fmt"

	"github.com/geosearch/search/internal/geo"
)

// A geo.Expr (a CQL2 filter) becomes SQL from the constant fragments
// below, as the rest of a search does: the property's name and every value
// are bind parameters, and the operators come from a fixed table. A
// property is read as jsonb (t.properties -> name) and typed by the value
// it meets: a string compares as text (byte-wise, COLLATE "C") only with
// string properties, a number as numeric only with number properties (the
// CASE yields NULL for the others, which no comparison keeps), a boolean as a
// boolean, and IN by jsonb equality. Missing properties are NULL: SQL's
// three-valued logic is CQL2's.
const (
	exprOpen  = `(`
	exprClose = `)`
	exprAnd   = ` AND `
	exprOr    = ` OR `
	exprNot   = `NOT `

	exprString  = `(CASE WHEN jsonb_typeof(t.properties -> $?::text) = 'string' THEN t.properties ->> $?::text END) COLLATE "C" `
	exprStringV = ` ($?::text COLLATE "C")`
	exprNumber  = `(CASE WHEN jsonb_typeof(t.properties -> $?::text) = 'number' THEN (t.properties ->> $?::text)::numeric END) `
	exprNumberV = ` $?::numeric`
	exprBool    = `(CASE WHEN jsonb_typeof(t.properties -> $?::text) = 'boolean' THEN t.properties -> $?::text END) `
	exprBoolV   = ` to_jsonb($?::bool)`
	exprIn      = `t.properties -> $?::text = ANY($?::jsonb[])`
	exprLike    = `(CASE WHEN jsonb_typeof(t.properties -> $?::text) = 'string' THEN t.properties ->> $?::text END) LIKE $?::text`
	exprBetween = `(CASE WHEN jsonb_typeof(t.properties -> $?::text) = 'number' THEN (t.properties ->> $?::text)::numeric END) BETWEEN $?::numeric AND $?::numeric`
	exprIsNull  = `coalesce(jsonb_typeof(t.properties -> $?::text), 'null') = 'null'`
	// ST_MakeValid: GEOS answers an invalid polygon with an error.
	exprIntersects = `ST_Intersects(t.geom, ST_MakeValid(ST_SetSRID(ST_GeomFromGeoJSON($?::text), 4326)))`
)

// exprOps are the SQL of the comparison operators, the only operator text
// a filter puts in a statement.
var exprOps = map[string]string{
	geo.OpEq: "=", geo.OpNe: "<>", geo.OpLt: "<", geo.OpLe: "<=", geo.OpGt: ">", geo.OpGe: ">=",
}

// expr adds e, which must be valid, as one parenthesised condition.
func (s *statement) expr(e geo.Expr) {
	s.add(exprOpen)
	defer s.add(exprClose)
	switch {
	case len(e.And) > 0 || len(e.Or) > 0:
		list, join := e.And, exprAnd
		if len(e.Or) > 0 {
			list, join = e.Or, exprOr
		}
		for i, x := range list {
			if i > 0 {
				s.add(join)
			}
			s.expr(x)
		}
	case e.Not != nil:
		s.add(exprNot)
		s.expr(*e.Not)
	case e.Compare != nil:
		c := e.Compare
		op, ok := exprOps[c.Op]
		if !ok {
			panic("postgis: an expression that was not validated: operator " + c.Op)
		}
		switch v := c.Value.(type) {
		case string:
			s.add(exprString, c.Property, c.Property)
			s.add(op)
			s.add(exprStringV, v)
		case float64:
			s.add(exprNumber, c.Property, c.Property)
			s.add(op)
			s.add(exprNumberV, v)
		case bool:
			s.add(exprBool, c.Property, c.Property)
			s.add(op)
			s.add(exprBoolV, v)
		default:
			panic(fmt.Sprintf("postgis: an expression that was not validated: value %T", v))
		}
	case e.In != nil:
		vs := make([]string, len(e.In.Values))
		for i, v := range e.In.Values {
			b, err := json.Marshal(v)
			if err != nil {
				panic(fmt.Sprintf("postgis: an expression that was not validated: %v", err))
			}
			vs[i] = string(b)
		}
		s.add(exprIn, e.In.Property, vs)
	case e.Like != nil:
		s.add(exprLike, e.Like.Property, e.Like.Property, e.Like.Pattern)
	case e.Between != nil:
		s.add(exprBetween, e.Between.Property, e.Between.Property, e.Between.Low, e.Between.High)
	case e.IsNull != "":
		s.add(exprIsNull, e.IsNull)
	case e.Intersects != "":
		s.add(exprIntersects, e.Intersects)
	default:
		panic("postgis: an empty expression")
	}
}
