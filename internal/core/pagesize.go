package core

import "github.com/geosearch/search/internal/geo"

// PageSize is the one page-size rule of both edges: n things asked per
// page (or per Locate point), 0 when none were asked, gives the default
// def; more than max gives max; a negative n is Invalid, naming field as
// the caller's protocol does.
func PageSize(n int64, field string, def, max int) (int, error) {
	switch {
	case n < 0:
		return 0, geo.Errorf(geo.Invalid, "%s must not be negative, got %d", field, n)
	case n == 0:
		return def, nil
	case n > int64(max):
		return max, nil
	}
	return int(n), nil
}
