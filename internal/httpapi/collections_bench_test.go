package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// squares yields n small squares named in order.
type squares struct{ i, n int }

func (s *squares) Next(context.Context) (geo.Feature, error) {
	if s.i == s.n {
		return geo.Feature{}, io.EOF
	}
	i := s.i
	s.i++
	x, y := float64(i%300)*0.01, float64(i/300)*0.01
	return geotest.Square(fmt.Sprintf("sq %07d", i), "", nil, x, y, x+0.005, y+0.005), nil
}

// BenchmarkItemsPageByCollectionSize pages through a 1k-thing collection
// and a 100k-thing one, stored side by side in one database, over OGC
// items (10 things a page, following next links): one op is one page. The
// per-page cost should not grow with the collection, nor with the other
// collection beside it (docs/BENCHMARKS.md: compare the two in one run).
func BenchmarkItemsPageByCollectionSize(b *testing.B) {
	a := start(b, func(s *setup) { s.fixture = "" })
	for _, c := range []struct {
		name string
		n    int
	}{{"small", 1000}, {"large", 100000}} {
		res, err := a.svc.Import(context.Background(), geo.ImportOptions{Collection: c.name}, &squares{n: c.n})
		if err != nil || res.Imported != c.n {
			b.Fatalf("import %d into %s: %d, %v", c.n, c.name, res.Imported, err)
		}
	}
	// What autovacuum does within a minute of a bulk import: until then
	// the planner takes the table for the size it had, and a 100k
	// collection's pages cost a scan and a sort each.
	if _, err := a.pool.Exec(context.Background(), "ANALYZE thing"); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, collection string }{{"1k", "small"}, {"100k", "large"}} {
		b.Run(c.name, func(b *testing.B) {
			first := a.base + "/collections/" + c.collection + "/items?limit=10"
			next := first
			for b.Loop() {
				resp, err := a.client.Get(next)
				if err != nil {
					b.Fatal(err)
				}
				var page struct {
					Links []struct{ Href, Rel string }
				}
				err = json.NewDecoder(resp.Body).Decode(&page)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d, %v", next, resp.StatusCode, err)
				}
				next = first
				for _, l := range page.Links {
					if l.Rel == "next" {
						if _, err := url.Parse(l.Href); err != nil {
							b.Fatal(err)
						}
						next = l.Href
					}
				}
			}
		})
	}
}
