package cql2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"

	"github.com/geosearch/search/internal/geo"
)

// ParseJSON reads a CQL2-JSON filter (OGC 21-065, the JSON encoding) with
// the operators ParseText reads: {"op": "and", "args": [...]}, comparisons
// with {"property": name} on one side, "in", "like", "between", "isNull",
// "not" and "s_intersects" with a GeoJSON geometry or {"bbox": [...]}. The
// expression it returns is validated.
func ParseJSON(text string) (geo.Expr, error) {
	if len(text) > MaxTextLength {
		return geo.Expr{}, geo.Errorf(geo.Invalid, "filter is %d bytes long; the limit is %d", len(text), MaxTextLength)
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return geo.Expr{}, geo.Errorf(geo.Invalid, "filter is not JSON: %v", err)
	}
	if dec.More() {
		return geo.Expr{}, geo.Errorf(geo.Invalid, "filter has more than one JSON value")
	}
	e, err := fromJSON(v, 0)
	if err != nil {
		return geo.Expr{}, err
	}
	if err := e.Validate(); err != nil {
		return geo.Expr{}, err
	}
	return e, nil
}

func jsonErr(format string, args ...any) error {
	return geo.Errorf(geo.Invalid, "filter (CQL2-JSON): "+format, args...)
}

func fromJSON(v any, depth int) (geo.Expr, error) {
	if depth > geo.MaxExprDepth {
		return geo.Expr{}, geo.Errorf(geo.Invalid, "the filter nests deeper than %d levels", geo.MaxExprDepth)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return geo.Expr{}, jsonErr("a condition must be an object with op and args")
	}
	op, _ := obj["op"].(string)
	args, ok := obj["args"].([]any)
	if !ok {
		return geo.Expr{}, jsonErr("operation %q needs an args array", op)
	}
	o, ok := jsonOps[strings.ToLower(op)]
	if !ok {
		return geo.Expr{}, jsonErr("unknown or unsupported op %q", op)
	}
	if o.args >= 0 && len(args) != o.args {
		return geo.Expr{}, jsonErr("%q takes %d arguments, got %d", op, o.args, len(args))
	}
	return o.parse(op, args, depth)
}

// jsonOp reads one operation's arguments, of which there must be args
// (any number when it is -1).
type jsonOp struct {
	args  int
	parse func(op string, args []any, depth int) (geo.Expr, error)
}

// jsonOps are the operations ParseJSON reads, by lower-case name. They are
// set in init because and, or and not read through fromJSON, which reads
// this table.
var jsonOps map[string]jsonOp

func init() {
	jsonOps = map[string]jsonOp{
		"and":          {-1, jsonAndOr},
		"or":           {-1, jsonAndOr},
		"not":          {1, jsonNot},
		"like":         {2, jsonLike},
		"between":      {3, jsonBetween},
		"in":           {2, jsonIn},
		"isnull":       {1, jsonIsNull},
		"s_intersects": {2, jsonIntersects},
	}
	for _, op := range []string{"=", "<>", "<", "<=", ">", ">="} {
		jsonOps[op] = jsonOp{2, jsonCompare}
	}
}

func jsonAndOr(op string, args []any, depth int) (geo.Expr, error) {
	list := make([]geo.Expr, 0, len(args))
	for _, a := range args {
		e, err := fromJSON(a, depth+1)
		if err != nil {
			return e, err
		}
		list = append(list, e)
	}
	if strings.EqualFold(op, "and") {
		return geo.Expr{And: list}, nil
	}
	return geo.Expr{Or: list}, nil
}

func jsonNot(_ string, args []any, depth int) (geo.Expr, error) {
	e, err := fromJSON(args[0], depth+1)
	return geo.Expr{Not: &e}, err
}

func jsonCompare(op string, args []any, _ int) (geo.Expr, error) {
	p, lit, cmpOp := property(args[0]), args[1], op
	if p == "" {
		p, lit, cmpOp = property(args[1]), args[0], flipped[op]
	}
	if p == "" {
		return geo.Expr{}, jsonErr("%q needs a {\"property\": ...} on one side", op)
	}
	val, err := literal(lit)
	if err != nil {
		return geo.Expr{}, err
	}
	return geo.Expr{Compare: &geo.Comparison{Property: p, Op: cmpOp, Value: val}}, nil
}

func jsonLike(_ string, args []any, _ int) (geo.Expr, error) {
	p := property(args[0])
	pat, ok := args[1].(string)
	if p == "" || !ok {
		return geo.Expr{}, jsonErr(`"like" takes a {"property": ...} and a pattern string`)
	}
	return geo.Expr{Like: &geo.LikePattern{Property: p, Pattern: pat}}, nil
}

func jsonBetween(_ string, args []any, _ int) (geo.Expr, error) {
	p := property(args[0])
	lo, err1 := literal(args[1])
	hi, err2 := literal(args[2])
	l, ok1 := lo.(float64)
	h, ok2 := hi.(float64)
	if p == "" || err1 != nil || err2 != nil || !ok1 || !ok2 {
		return geo.Expr{}, jsonErr(`"between" takes a {"property": ...} and two numbers`)
	}
	return geo.Expr{Between: &geo.Range{Property: p, Low: l, High: h}}, nil
}

func jsonIn(_ string, args []any, _ int) (geo.Expr, error) {
	p := property(args[0])
	list, ok := args[1].([]any)
	if p == "" || !ok {
		return geo.Expr{}, jsonErr(`"in" takes a {"property": ...} and an array of values`)
	}
	vals := make([]any, 0, len(list))
	for _, x := range list {
		val, err := literal(x)
		if err != nil {
			return geo.Expr{}, err
		}
		vals = append(vals, val)
	}
	return geo.Expr{In: &geo.InList{Property: p, Values: vals}}, nil
}

func jsonIsNull(_ string, args []any, _ int) (geo.Expr, error) {
	p := property(args[0])
	if p == "" {
		return geo.Expr{}, jsonErr(`"isNull" takes a {"property": ...}`)
	}
	return geo.Expr{IsNull: p}, nil
}

func jsonIntersects(_ string, args []any, _ int) (geo.Expr, error) {
	g := args[1]
	if !isGeometryProperty(property(args[0])) {
		g = args[0]
		if !isGeometryProperty(property(args[1])) {
			return geo.Expr{}, jsonErr(`"s_intersects" takes {"property": "geometry"} and a geometry`)
		}
	}
	raw, err := spatialLiteral(g)
	if err != nil {
		return geo.Expr{}, err
	}
	return geo.Expr{Intersects: raw}, nil
}

// property returns the name of {"property": name}, or "".
func property(v any) string {
	obj, ok := v.(map[string]any)
	if !ok || len(obj) != 1 {
		return ""
	}
	name, _ := obj["property"].(string)
	return name
}

func literal(v any) (any, error) {
	switch v := v.(type) {
	case string, bool:
		return v, nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return nil, jsonErr("%s is not a finite number", v)
		}
		return f, nil
	}
	return nil, jsonErr("a value must be a string, a number or a boolean, got %s", fmt.Sprintf("%T", v))
}

// spatialLiteral turns a GeoJSON geometry or {"bbox": [w, s, e, n]} into
// GeoJSON text.
func spatialLiteral(v any) (string, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return "", jsonErr("a spatial literal must be a GeoJSON geometry or a bbox object")
	}
	if raw, ok := obj["bbox"].([]any); ok && len(obj) == 1 {
		if len(raw) != 4 {
			return "", jsonErr("bbox takes 4 numbers: west, south, east, north")
		}
		var b [4]float64
		for i, x := range raw {
			f, err := literal(x)
			n, isNum := f.(float64)
			if err != nil || !isNum {
				return "", jsonErr("bbox takes 4 numbers: west, south, east, north")
			}
			b[i] = n
		}
		if b[0] > b[2] || b[1] > b[3] {
			return "", jsonErr("bbox is west, south, east, north with west <= east and south <= north")
		}
		g := geom.NewPolygonFlat(geom.XY, []float64{b[0], b[1], b[2], b[1], b[2], b[3], b[0], b[3], b[0], b[1]}, []int{10})
		out, err := geojson.Marshal(g)
		return string(out), err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(obj); err != nil {
		return "", jsonErr("the geometry: %v", err)
	}
	return strings.TrimSpace(buf.String()), nil
}
