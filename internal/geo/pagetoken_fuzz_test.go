package geo_test

import (
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/geosearch/search/internal/geo"
)

// FuzzDecodePageToken feeds arbitrary tokens to the decoder: it must never
// panic, every error must be Invalid, and whatever it accepts must encode
// back to the same token.
func FuzzDecodePageToken(f *testing.F) {
	filter := geo.Filter{Query: "an", Point: &geo.Point{Lat: 1, Lng: 2}, BBox: &geo.BBox{MinLng: 170, MinLat: -10, MaxLng: -170, MaxLat: 10}}
	f.Add(geo.EncodePageToken(filter, geo.Cursor{Name: "Angola", ID: 7}))
	f.Add(geo.EncodePageToken(filter, geo.Cursor{Name: "Côte d'Ivoire", ID: 1 << 40}))
	f.Add("")
	f.Add("AQ")
	f.Add("not a token!")
	f.Add("AQAAAAAAAAAAAQ")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := geo.DecodePageToken(tok, filter, "page_token")
		if err != nil {
			if geo.ErrorCode(err) != geo.Invalid {
				t.Fatalf("error %v is not Invalid", err)
			}
			return
		}
		if c.ID <= 0 || c.Name == "" || !utf8.ValidString(c.Name) {
			t.Fatalf("accepted a cursor that no page ends with: %+v", c)
		}
		if again, err := geo.DecodePageToken(geo.EncodePageToken(filter, c), filter, "page_token"); err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip of %+v gave %+v, %v", c, again, err)
		}
	})
}
