package httpapi

import (
	"bytes"
	"testing"
	"time"
)

func TestTileCacheBoundsBytesAndDropsOldVersions(t *testing.T) {
	t.Parallel()
	v1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v2 := v1.Add(time.Second)
	tile := func(n int) cachedTile { return cachedTile{mvt: bytes.Repeat([]byte{1}, n)} }
	per := int64(1000 + len("a") + tileEntryOverhead)
	c := newTileCache(3 * per)
	c.see("c", v1)
	for _, k := range []string{"a", "b", "c"} {
		c.put(k, "c", v1, tile(1000))
	}
	if n, b := c.stats(); n != 3 || b != 3*per {
		t.Fatalf("three tiles: %d entries, %d bytes", n, b)
	}
	c.get("a") // a is now the most recent: b goes first
	c.put("d", "c", v1, tile(1000))
	if _, ok := c.get("b"); ok {
		t.Errorf("the least recently used tile stayed")
	}
	if _, ok := c.get("a"); !ok {
		t.Errorf("a recently used tile went")
	}
	c.put("other", "o", v1, tile(10))
	c.put("huge", "c", v1, tile(int(4*per)))
	if _, ok := c.get("huge"); ok {
		t.Errorf("a tile above the whole bound was kept")
	}
	// A newer version of c drops c's tiles, not o's, and refuses c's
	// older tiles from then on.
	c.see("c", v2)
	c.put("late", "c", v1, tile(10))
	for _, k := range []string{"a", "c", "d", "late"} {
		if _, ok := c.get(k); ok {
			t.Errorf("tile %s of the old version stayed", k)
		}
	}
	if _, ok := c.get("other"); !ok {
		t.Errorf("another collection's tile went")
	}
	none := newTileCache(0)
	none.put("a", "c", v1, tile(1))
	if n, _ := none.stats(); n != 0 {
		t.Errorf("a cache of 0 bytes kept %d tiles", n)
	}
}
