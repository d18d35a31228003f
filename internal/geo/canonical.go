package geo

import (
	"slices"
	"strings"
)

// Canonical returns f in a canonical form, which selects the same things:
// collections sorted without repeats, property filters sorted by key, their
// values sorted (by type, then value) without repeats. Two filters select the
// same things when their canonical forms are equal; page tokens hash it.
func (f Filter) Canonical() Filter {
	c := f // every field, a new one included; then the ones with an order
	c.Collections, c.Properties = nil, nil
	if len(f.Collections) > 0 {
		c.Collections = slices.Compact(slices.Sorted(slices.Values(f.Collections)))
	}
	if len(f.Properties) > 0 {
		c.Properties = make([]PropertyFilter, len(f.Properties))
		for i, pf := range f.Properties {
			vs := slices.Clone(pf.Values)
			slices.SortFunc(vs, compareValues)
			vs = slices.CompactFunc(vs, func(a, b any) bool { return compareValues(a, b) == 0 })
			c.Properties[i] = PropertyFilter{Key: pf.Key, Values: vs}
		}
		slices.SortFunc(c.Properties, func(a, b PropertyFilter) int { return strings.Compare(a.Key, b.Key) })
	}
	return c
}

// compareValues orders property values: booleans, then numbers, then
// strings, then anything else (which Validate refuses).
func compareValues(a, b any) int {
	rank := func(v any) int {
		switch v.(type) {
		case bool:
			return 0
		case float64:
			return 1
		case string:
			return 2
		default:
			return 3
		}
	}
	if c := rank(a) - rank(b); c != 0 {
		return c
	}
	switch a := a.(type) {
	case bool:
		bb := b.(bool)
		switch {
		case a == bb:
			return 0
		case !a:
			return -1
		default:
			return 1
		}
	case float64:
		return cmpFloat(a, b.(float64))
	case string:
		return strings.Compare(a, b.(string))
	}
	return 0
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	default:
		return 0
	}
}
