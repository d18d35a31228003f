package httpapi

import (
	"container/list"
	"sync"
	"time"
)

// tileCache keeps the most recently served tiles up to a number of bytes
// (least recently used out first). A key names a tile of one version of a
// collection (its Updated time): a tile of an older version is never
// asked for again, and the first request that sees a collection's newer
// version drops every tile of the older ones at once (an import into the
// collection, through any instance, invalidates them).
type tileCache struct {
	mu       sync.Mutex
	maxBytes int64
	bytes    int64
	order    *list.List // of *tileEntry, most recent first
	byKey    map[string]*list.Element
	// versions is the newest version seen of each collection cached.
	versions map[string]time.Time
}

type tileEntry struct {
	key, collection string
	version         time.Time
	tile            cachedTile
}

// cachedTile is a tile as served.
type cachedTile struct {
	mvt     []byte
	reduced bool
}

// tileEntryOverhead approximates an entry's bytes beyond its tile.
const tileEntryOverhead = 200

func newTileCache(maxBytes int64) *tileCache {
	return &tileCache{maxBytes: maxBytes, order: list.New(), byKey: map[string]*list.Element{}, versions: map[string]time.Time{}}
}

// see records that collection is at version, dropping its older tiles.
func (c *tileCache) see(collection string, version time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen, ok := c.versions[collection]
	if ok && !version.After(seen) {
		return
	}
	c.versions[collection] = version
	if !ok {
		return
	}
	for e := c.order.Front(); e != nil; {
		next := e.Next()
		if te := e.Value.(*tileEntry); te.collection == collection && te.version.Before(version) {
			c.remove(e)
		}
		e = next
	}
}

func (c *tileCache) get(key string) (cachedTile, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return cachedTile{}, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*tileEntry).tile, true
}

func (c *tileCache) put(key, collection string, version time.Time, tile cachedTile) {
	size := int64(len(tile.mvt) + len(key) + tileEntryOverhead)
	c.mu.Lock()
	defer c.mu.Unlock()
	if size > c.maxBytes {
		return
	}
	if seen, ok := c.versions[collection]; ok && version.Before(seen) {
		return // drawn from an older version than the cache now holds
	}
	if e, ok := c.byKey[key]; ok {
		c.remove(e)
	}
	c.byKey[key] = c.order.PushFront(&tileEntry{key: key, collection: collection, version: version, tile: tile})
	c.bytes += size
	for c.bytes > c.maxBytes {
		c.remove(c.order.Back())
	}
}

func (c *tileCache) remove(e *list.Element) {
	te := c.order.Remove(e).(*tileEntry)
	delete(c.byKey, te.key)
	c.bytes -= int64(len(te.tile.mvt) + len(te.key) + tileEntryOverhead)
}

// stats returns the number of tiles cached and their bytes.
func (c *tileCache) stats() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.bytes
}
