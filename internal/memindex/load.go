package memindex

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twpayne/go-geom/encoding/wkb"
)

// Stored is what a Scan saw: the snapshot it read in (pg_snapshot's text),
// the WAL position then (pg_lsn's text), the collection's updated_at
// (Exists false: no such collection, and nothing was scanned) and the
// database's postgis_lib_version().
type Stored struct {
	Snapshot  string
	LSN       string
	UpdatedAt time.Time
	Exists    bool
	PostGIS   string
}

// ErrPostGISVersion is returned by Load when the database runs a PostGIS
// whose point-in-polygon code was not matched: 3.4 replaced the code path
// this package reproduces (an interval tree, lw_segment_side and
// lw_pt_in_seg), so its answers may differ at boundaries. Collections then
// stay on PostGIS.
var ErrPostGISVersion = errors.New("PostGIS version not matched by the in-memory index (3.3 is)")

// matchedPostGIS says whether postgis_lib_version() v runs the arithmetic
// of pip.go.
func matchedPostGIS(v string) bool { return strings.HasPrefix(v, "3.3.") }

// Scan reads every thing of a collection in one database snapshot, calling
// fn with each thing's id and stored geometry as WKB, and says what it saw.
// postgis.SearchService.ScanGeometries is one.
type Scan func(ctx context.Context, collection string, fn func(id int64, wkb []byte) error) (Stored, error)

// Load builds the index of collection from what scan reads, versioned by
// the snapshot it read in. A collection that does not exist gives an
// empty index.
func Load(ctx context.Context, scan Scan, collection string) (*Index, error) {
	var things []Thing
	st, err := scan(ctx, collection, func(id int64, b []byte) error {
		g, err := wkb.Unmarshal(b)
		if err != nil {
			return fmt.Errorf("thing %d: decode stored geometry: %w", id, err)
		}
		things = append(things, Thing{ID: id, Geometry: g})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load collection %q: %w", collection, err)
	}
	if !matchedPostGIS(st.PostGIS) {
		return nil, fmt.Errorf("load collection %q: PostGIS %s: %w", collection, st.PostGIS, ErrPostGISVersion)
	}
	v := Version{Collection: collection, UpdatedAt: st.UpdatedAt}
	if v.Snapshot, err = ParseSnapshot(st.Snapshot); err != nil {
		return nil, fmt.Errorf("load collection %q: %w", collection, err)
	}
	if v.LSN, err = ParseLSN(st.LSN); err != nil {
		return nil, fmt.Errorf("load collection %q: %w", collection, err)
	}
	ix, err := Build(v, things)
	if err != nil {
		return nil, fmt.Errorf("load collection %q: %w", collection, err)
	}
	return ix, nil
}

// ParseLSN reads pg_lsn's text form, two hexadecimal halves "X/Y".
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("WAL position %q: want X/Y", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("WAL position %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("WAL position %q: %w", s, err)
	}
	return h<<32 | l, nil
}
