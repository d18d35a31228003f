package memindex

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/wkb"
)

// fakeScan serves things as a database scan would.
func fakeScan(t *testing.T, st Stored, things map[int64]geom.T) Scan {
	t.Helper()
	return func(ctx context.Context, collection string, fn func(int64, []byte) error) (Stored, error) {
		for id := int64(1); id <= int64(len(things)); id++ {
			b, err := wkb.Marshal(things[id], binary.LittleEndian)
			if err != nil {
				t.Fatal(err)
			}
			if err := fn(id, b); err != nil {
				return Stored{}, err
			}
		}
		return st, nil
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	sq := geom.NewMultiPolygon(geom.XY).MustSetCoords([][][]geom.Coord{{{{0, 0}, {1, 0}, {1, 1}, {0, 1}, {0, 0}}}})
	updated := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	st := Stored{Snapshot: "100:105:101", LSN: "16/B374D848", UpdatedAt: updated, Exists: true, PostGIS: "3.3.2"}
	ix, err := Load(context.Background(), fakeScan(t, st, map[int64]geom.T{1: sq}), "squares")
	if err != nil {
		t.Fatal(err)
	}
	v := ix.Version()
	if v.Collection != "squares" || v.LSN != 0x16_B374D848 || !v.UpdatedAt.Equal(updated) || v.Snapshot.String() != "100:105:101" {
		t.Errorf("version %+v", v)
	}
	if got, _ := ix.Lookup(nil, 0.5, 0.5); len(got) != 1 || got[0] != 1 {
		t.Errorf("Lookup in the square: %v", got)
	}

	st34 := st
	st34.PostGIS = "3.4.2"
	if _, err := Load(context.Background(), fakeScan(t, st34, nil), "squares"); !errors.Is(err, ErrPostGISVersion) {
		t.Errorf("PostGIS 3.4: error %v, want ErrPostGISVersion", err)
	}
	bad := st
	bad.LSN = "nope"
	if _, err := Load(context.Background(), fakeScan(t, bad, nil), "squares"); err == nil {
		t.Error("a bad WAL position was accepted")
	}
	line := geom.NewLineString(geom.XY).MustSetCoords([]geom.Coord{{0, 0}, {1, 1}})
	if _, err := Load(context.Background(), fakeScan(t, st, map[int64]geom.T{1: line}), "squares"); err == nil {
		t.Error("a line was indexed")
	}
}
