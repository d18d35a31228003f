package geo_test

import (
	"encoding/base64"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo"
)

func TestParseSortBy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw  string
		want []geo.SortKey
		err  string // a part of the error; "" for none
	}{
		{"", nil, ""},
		{"name", []geo.SortKey{{Property: "name"}}, ""},
		{"+name,-pop", []geo.SortKey{{Property: "name"}, {Property: "pop", Desc: true}}, ""},
		{" name , - pop", []geo.SortKey{{Property: "name"}, {Property: "pop", Desc: true}}, ""}, // "+" unencoded in a URL is a space
		{"name,", nil, "empty key"},
		{"-", nil, "empty key"},
		{"a.b", nil, "nested path"},
		{"a,-a", nil, "sorted by twice"},
		{"a,b,c,d,e,f,g,h,i", nil, "at most 8"},
	} {
		got, err := geo.ParseSortBy(tc.raw, "sortby")
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.raw, err)
		case tc.err != "" && (geo.ErrorCode(err) != geo.Invalid || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "sortby")):
			t.Errorf("%q: error %v, want Invalid naming sortby with %q", tc.raw, err, tc.err)
		case !reflect.DeepEqual(got, tc.want):
			t.Errorf("%q: %+v, want %+v", tc.raw, got, tc.want)
		}
	}
	if got := geo.FormatSortBy([]geo.SortKey{{Property: "a"}, {Property: "b", Desc: true}}); got != "+a,-b" {
		t.Errorf("FormatSortBy: %q", got)
	}
}

// TestSortedPageToken: a sorted token round-trips its values, is refused
// with another filter or order or without its sort, and a token of an
// unsorted search is refused with a sort.
func TestSortedPageToken(t *testing.T) {
	t.Parallel()
	f := geo.Filter{Collections: []string{"c"}}
	by := []geo.SortKey{{Property: "pop", Desc: true}, {Property: "name"}, {Property: "open"}, {Property: "gone"}}
	c := geo.Cursor{ID: 42, Sort: []geo.SortValue{{geo.SortNumber, "-1.5e300"}, {geo.SortString, "Zürich, \"CH\""}, {geo.SortBoolean, "false"}, {}}}
	tok := geo.EncodeSortedPageToken(f, by, c)
	got, err := geo.DecodeSortedPageToken(tok, f, by, "cursor")
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, c)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	if raw[0] != 5 {
		t.Errorf("version %d, want 5 (1 to 4 are unsorted searches)", raw[0])
	}
	other := slices.Clone(by)
	other[0].Desc = false
	plain := geo.EncodePageToken(f, geo.Cursor{Name: "a", ID: 1})
	for name, try := range map[string]func() error{
		"another order": func() error { _, err := geo.DecodeSortedPageToken(tok, f, other, "cursor"); return err },
		"another filter": func() error {
			_, err := geo.DecodeSortedPageToken(tok, geo.Filter{Query: "x"}, by, "cursor")
			return err
		},
		"without a sort":  func() error { _, err := geo.DecodeSortedPageToken(tok, f, nil, "cursor"); return err },
		"unsorted token":  func() error { _, err := geo.DecodeSortedPageToken(plain, f, by, "cursor"); return err },
		"truncated token": func() error { _, err := geo.DecodeSortedPageToken(tok[:len(tok)-3], f, by, "cursor"); return err },
	} {
		if err := try(); geo.ErrorCode(err) != geo.Invalid {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
	// Values a store could not read are refused: a number that is not one.
	bad := geo.EncodeSortedPageToken(f, by[:1], geo.Cursor{ID: 1, Sort: []geo.SortValue{{geo.SortNumber, "1; drop"}}})
	if _, err := geo.DecodeSortedPageToken(bad, f, by[:1], "cursor"); geo.ErrorCode(err) != geo.Invalid {
		t.Errorf("a number that is not one: %v", err)
	}
	// Without a sort, the tokens are the unsorted ones, unchanged.
	if got := geo.EncodeSortedPageToken(f, nil, geo.Cursor{Name: "a", ID: 1}); got != plain {
		t.Errorf("unsorted token changed: %s, want %s", got, plain)
	}
}

// FuzzDecodeSortedPageToken: the decoder never panics, every error is
// Invalid, and what it accepts encodes back to a token it accepts alike.
func FuzzDecodeSortedPageToken(f *testing.F) {
	filter := geo.Filter{Collections: []string{"c"}}
	by := []geo.SortKey{{Property: "pop", Desc: true}, {Property: "name"}}
	f.Add(geo.EncodeSortedPageToken(filter, by, geo.Cursor{ID: 7, Sort: []geo.SortValue{{geo.SortNumber, "12"}, {}}}))
	f.Add(geo.EncodeSortedPageToken(filter, by, geo.Cursor{ID: 9, Sort: []geo.SortValue{{geo.SortString, "x"}, {geo.SortBoolean, "true"}}}))
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := geo.DecodeSortedPageToken(tok, filter, by, "cursor")
		if err != nil {
			if geo.ErrorCode(err) != geo.Invalid {
				t.Fatalf("error %v is not Invalid", err)
			}
			return
		}
		again, err := geo.DecodeSortedPageToken(geo.EncodeSortedPageToken(filter, by, c), filter, by, "cursor")
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip of %+v gave %+v, %v", c, again, err)
		}
	})
}
