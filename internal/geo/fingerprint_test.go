package geo_test

import (
	"reflect"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// TestFingerprintCoversEveryFilterField is the page-token side of the
// filter-coverage check: setting any field of geo.Filter (found by
// reflection) changes the fingerprint, so a token cannot be replayed with
// another filter.
func TestFingerprintCoversEveryFilterField(t *testing.T) {
	t.Parallel()
	fields := geotest.FilterFields()
	base := geotest.FilterBase()
	typ := reflect.TypeFor[geo.Filter]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		ff, ok := fields[name]
		if !ok {
			t.Errorf("geo.Filter.%s has no entry in geotest.FilterFields", name)
			continue
		}
		f := base
		ff.Narrow(&f)
		if geo.FilterFingerprint(f) == geo.FilterFingerprint(base) {
			t.Errorf("setting %s leaves the fingerprint unchanged", name)
		}
	}
}

func TestFingerprintIsOfTheCanonicalFilter(t *testing.T) {
	t.Parallel()
	a := geo.Filter{Collections: []string{"b", "a", "b"}, Properties: []geo.PropertyFilter{
		{Key: "z", Values: []any{"y", "x", 2.0, true}}, {Key: "k", Values: []any{1.0}}}}
	b := geo.Filter{Collections: []string{"a", "b"}, Properties: []geo.PropertyFilter{
		{Key: "k", Values: []any{1.0}}, {Key: "z", Values: []any{true, 2.0, "x", "y", "x"}}}}
	if geo.FilterFingerprint(a) != geo.FilterFingerprint(b) {
		t.Errorf("filters selecting the same things have different fingerprints:\n%+v\n%+v", a.Canonical(), b.Canonical())
	}
	c := b
	c.Properties = []geo.PropertyFilter{{Key: "k", Values: []any{"1"}}, b.Properties[1]}
	if geo.FilterFingerprint(c) == geo.FilterFingerprint(b) {
		t.Error("the string 1 and the number 1 share a fingerprint")
	}
}

// TestFingerprintCoversEveryExprPart: each part of a CQL2 expression (found
// by reflection) is in the fingerprint, so two filters differing in one part
// never share their tokens.
func TestFingerprintCoversEveryExprPart(t *testing.T) {
	t.Parallel()
	cmp := geo.Expr{Compare: &geo.Comparison{Property: "a", Op: geo.OpEq, Value: "x"}}
	parts := map[string]geo.Expr{
		"And":        {And: []geo.Expr{cmp, cmp}},
		"Or":         {Or: []geo.Expr{cmp, cmp}},
		"Not":        {Not: &cmp},
		"Compare":    cmp,
		"In":         {In: &geo.InList{Property: "a", Values: []any{"x"}}},
		"Like":       {Like: &geo.LikePattern{Property: "a", Pattern: "x"}},
		"Between":    {Between: &geo.Range{Property: "a", Low: 1, High: 2}},
		"IsNull":     {IsNull: "a"},
		"Intersects": {Intersects: `{"type":"Point","coordinates":[1,2]}`},
	}
	seen := map[uint64]string{}
	typ := reflect.TypeFor[geo.Expr]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		e, ok := parts[name]
		if !ok {
			t.Errorf("geo.Expr.%s has no example here", name)
			continue
		}
		fp := geo.FilterFingerprint(geo.Filter{Where: &e})
		if prev, dup := seen[fp]; dup {
			t.Errorf("expressions of %s and %s share a fingerprint", prev, name)
		}
		seen[fp] = name
	}
}
