// Package geotest has test helpers for the domain: loading fixture files and
// feeding features to an import.
package geotest

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo"
)

// Testdata returns the path of name in the repository's testdata directory.
func Testdata(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", name)
}

// LoadRaw reads a GeoJSON fixture from testdata (gzip-compressed if its name
// ends in .gz), keyed by name.
func LoadRaw(t testing.TB, name string) []geo.RawFeature {
	t.Helper()
	f, err := os.Open(Testdata(name))
	if err != nil {
		t.Fatalf("open fixture: %v", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("open fixture: %v", err)
		}
		r = zr
	}
	var out []geo.RawFeature
	err = geo.ScanFeatureCollection(r, geo.ScanOptions{KeyProperty: "name"}, func(rf geo.RawFeature) error {
		out = append(out, rf)
		return nil
	})
	if err != nil {
		t.Fatalf("read fixture %s: %v", name, err)
	}
	return out
}

// Load reads a fixture and decodes every feature, failing the test if any
// feature is invalid.
func Load(t testing.TB, name string) []geo.Feature {
	t.Helper()
	raws := LoadRaw(t, name)
	out := make([]geo.Feature, 0, len(raws))
	for _, rf := range raws {
		f, err := geo.DecodeFeature(rf, geo.DefaultLimits)
		if err != nil {
			t.Fatalf("fixture %s feature %d (%s): %v", name, rf.Index, rf.Name, err)
		}
		out = append(out, f)
	}
	return out
}

// Source is a geo.FeatureSource over a slice; Err, if set, is returned after
// the features instead of io.EOF.
type Source struct {
	Features []geo.Feature
	Err      error
	next     int
}

// Next returns the next feature.
func (s *Source) Next(ctx context.Context) (geo.Feature, error) {
	if err := ctx.Err(); err != nil {
		return geo.Feature{}, err
	}
	if s.next >= len(s.Features) {
		if s.Err != nil {
			return geo.Feature{}, s.Err
		}
		return geo.Feature{}, io.EOF
	}
	s.next++
	return s.Features[s.next-1], nil
}
