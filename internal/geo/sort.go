package geo

import (
	"strings"
)

// SortKey orders results by a top-level property of the things, as
// OGC API – Features – Part 8 (sortby) and the gRPC sort_by write it.
//
// A property holds values of any JSON type, so the order is defined for
// all of them: numbers (numerically), then strings (byte-wise, as names
// are), then booleans (false, then true); a thing that lacks the property
// or holds null, an array or an object in it comes last, in either
// direction. Desc reverses the order of the values, not the place of the
// missing ones. Things that tie on every key are in id order, so the
// order is total and pages never repeat or skip a thing.
type SortKey struct {
	Property string
	Desc     bool
}

// MaxSortKeys is the most keys one search may sort by.
const MaxSortKeys = 8

// ParseSortBy reads the sortby syntax shared by both edges: keys separated
// by commas, each a property name with an optional "+" (ascending, the
// default) or "-" (descending) before it. Spaces around a key are ignored,
// so that an unencoded "+" in a URL (read as a space) is still ascending.
// param names the parameter in the caller's protocol for error messages.
// An empty raw is no sort.
func ParseSortBy(raw, param string) ([]SortKey, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var keys []SortKey
	for part := range strings.SplitSeq(raw, ",") {
		k := SortKey{Property: strings.TrimSpace(part)}
		switch {
		case strings.HasPrefix(k.Property, "-"):
			k.Desc = true
			k.Property = strings.TrimSpace(k.Property[1:])
		case strings.HasPrefix(k.Property, "+"):
			k.Property = strings.TrimSpace(k.Property[1:])
		}
		if k.Property == "" {
			return nil, Errorf(Invalid, "%s: %q has an empty key; write property names separated by commas, each with an optional + or - before it", param, raw)
		}
		keys = append(keys, k)
	}
	if err := ValidateSort(keys); err != nil {
		return nil, Errorf(Invalid, "%s: %s", param, ErrorMessage(err))
	}
	return keys, nil
}

// FormatSortBy writes keys in the sortby syntax, each with its sign.
func FormatSortBy(keys []SortKey) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		sign := "+"
		if k.Desc {
			sign = "-"
		}
		parts[i] = sign + k.Property
	}
	return strings.Join(parts, ",")
}

// ValidateSort returns an Invalid error for more than MaxSortKeys keys, a
// property sorted twice, or a property name a filter could not name.
func ValidateSort(keys []SortKey) error {
	if len(keys) > MaxSortKeys {
		return Errorf(Invalid, "a search may sort by at most %d properties, got %d", MaxSortKeys, len(keys))
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		switch {
		case k.Property == "":
			return Errorf(Invalid, "a sort key needs a property")
		case strings.ContainsRune(k.Property, '.'):
			return Errorf(Invalid, "sort key %q is a nested path; only top-level properties can be sorted by", k.Property)
		case seen[k.Property]:
			return Errorf(Invalid, "property %q is sorted by twice", k.Property)
		}
		seen[k.Property] = true
		if err := validateText("sort key", k.Property, MaxPropertyKeyLength); err != nil {
			return err
		}
	}
	return nil
}

// ValidateSort returns an Invalid error when q's sort keys are malformed
// (ValidateSort) or do not fit the rest of q: a nearest search is ordered
// by distance and takes no other order, and a cursor carries one value per
// key.
func (q Query) ValidateSort() error {
	if len(q.SortBy) == 0 {
		return nil
	}
	if q.MaxDistanceM > 0 {
		return Errorf(Invalid, "a nearest search (max_distance_m) is ordered by distance and cannot be sorted by properties")
	}
	if err := ValidateSort(q.SortBy); err != nil {
		return err
	}
	if q.After != nil && len(q.After.Sort) != len(q.SortBy) {
		return Errorf(Invalid, "the page cursor has %d sort values for %d sort keys", len(q.After.Sort), len(q.SortBy))
	}
	return nil
}

// SortKind is the JSON type of a thing's value of a sort key, in the sort
// order (SortKey); SortMissing is a value that sorts last.
type SortKind uint8

// The kinds of sort values. The store numbers them the same way.
const (
	SortMissing SortKind = iota
	SortNumber
	SortString
	SortBoolean
)

// SortValue is a thing's value of one sort key, as a page cursor carries
// it: its kind and its JSON text without quotes (a number's digits as
// stored, so that the store compares it exactly; a string's characters;
// true or false). Text is empty for SortMissing.
type SortValue struct {
	Kind SortKind
	Text string
}
