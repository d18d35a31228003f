package geo_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// TestValidateCoversEveryFilterField is the validation side of the
// filter-coverage check: for every field of geo.Filter (found by
// reflection), its valid example passes Validate and its invalid one is
// refused with Invalid.
func TestValidateCoversEveryFilterField(t *testing.T) {
	t.Parallel()
	fields := geotest.FilterFields()
	typ := reflect.TypeFor[geo.Filter]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		ff, ok := fields[name]
		if !ok {
			t.Errorf("geo.Filter.%s has no entry in geotest.FilterFields", name)
			continue
		}
		good, bad := geotest.FilterBase(), geotest.FilterBase()
		ff.Narrow(&good)
		ff.Invalid(&bad)
		if err := good.Validate(); err != nil {
			t.Errorf("%s: valid example refused: %v", name, err)
		}
		if err := bad.Validate(); geo.ErrorCode(err) != geo.Invalid {
			t.Errorf("%s: invalid example: %v, want Invalid", name, err)
		}
	}
}

func TestFilterValidation(t *testing.T) {
	t.Parallel()
	pf := func(key string, values ...any) []geo.PropertyFilter {
		return []geo.PropertyFilter{{Key: key, Values: values}}
	}
	many := make([]geo.PropertyFilter, geo.MaxPropertyFilters+1)
	for i := range many {
		many[i] = geo.PropertyFilter{Key: strings.Repeat("k", i+1), Values: []any{"v"}}
	}
	tests := []struct {
		name   string
		filter geo.Filter
		want   string // "" for valid
	}{
		{"collection alone", geo.Filter{Collections: []string{"countries"}}, ""},
		{"properties alone", geo.Filter{Properties: pf("kind", "lake", 1.0, true)}, ""},
		{"64 characters", geo.Filter{Collections: []string{strings.Repeat("a", 64)}}, ""},
		{"digits, _ and -", geo.Filter{Collections: []string{"0-postal_zones"}}, ""},
		{"nothing", geo.Filter{}, "a search needs a query, a point, a collection or a property filter"},
		{"empty collection", geo.Filter{Collections: []string{""}}, "a collection name must not be empty"},
		{"65 characters", geo.Filter{Collections: []string{strings.Repeat("a", 65)}}, "collection name is 65 characters long; the limit is 64"},
		{"upper case", geo.Filter{Collections: []string{"Countries"}}, `collection name "Countries" is invalid`},
		{"space", geo.Filter{Collections: []string{"postal zones"}}, `collection name "postal zones" is invalid`},
		{"SQL", geo.Filter{Collections: []string{"x';DROP TABLE thing;--"}}, `collection name "x';DROP TABLE thing;--" is invalid`},
		{"leading dash", geo.Filter{Collections: []string{"-rf"}}, `collection name "-rf" is invalid`},
		{"too many collections", geo.Filter{Collections: make([]string, 101)}, "a search may name at most 100 collections, got 101"},
		{"empty key", geo.Filter{Properties: pf("", "x")}, "a property filter needs a key"},
		{"nested path", geo.Filter{Properties: pf("address.city", "Paris")}, `property filter key "address.city" is a nested path`},
		{"no value", geo.Filter{Properties: pf("kind")}, `property filter "kind" needs at least one value`},
		{"list value", geo.Filter{Properties: pf("tags", []any{"a"})}, `property filter "tags" value 0 is a list`},
		{"object value", geo.Filter{Properties: pf("o", map[string]any{"a": 1.0})}, `property filter "o" value 0 is an object`},
		{"null value", geo.Filter{Properties: pf("n", nil)}, `property filter "n" value 0 is null`},
		{"10 MB value", geo.Filter{Properties: pf("k", strings.Repeat("v", 10<<20))}, `property filter "k" value 0 is 10485760 characters long; the limit is 1000`},
		{"too many values", geo.Filter{Properties: pf("k", make([]any, 101)...)}, "property filters may have at most 100 values in all"},
		{"too many filters", geo.Filter{Properties: many}, "a search may filter at most 16 properties, got 17"},
		{"key twice", geo.Filter{Properties: append(pf("k", "a"), pf("k", "b")...)}, `property "k" is filtered twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.filter.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if geo.ErrorCode(err) != geo.Invalid || !strings.HasPrefix(geo.ErrorMessage(err), tt.want) {
				t.Errorf("got %v, want Invalid %q", err, tt.want)
			}
		})
	}
}
