package memindex

import (
	"cmp"
	"context"
	"slices"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

// SearchService is a geo.SearchService that answers point containment
// (Search with a point, Locate) from the registry's indexes when it holds
// every collection the read may see, as of a snapshot the read may be
// answered from, and the filters are ones it evaluates exactly; every
// other read, and every write, goes to the store it wraps. Its answers are
// the store's, at the snapshot of the registry's last refresh.
//
// It counts each point lookup, per collection of its scope ("all" for
// every collection), as memindex.memory.<collection> or
// memindex.database.<collection>.
type SearchService struct {
	geo.SearchService
	reg *Registry
	m   metrics.Metrics
}

// NewSearchService wraps store with reg's indexes, counting hits in m.
func NewSearchService(store geo.SearchService, reg *Registry, m metrics.Metrics) *SearchService {
	if m == nil {
		m = metrics.Nop{}
	}
	return &SearchService{SearchService: store, reg: reg, m: m}
}

// Search answers a point search from memory when it can (see
// SearchService), and sends it to the store otherwise.
func (s *SearchService) Search(ctx context.Context, q geo.Query) (geo.Page, error) {
	// A sorted search pages by property values the index does not order by.
	if !pointLookup(q.Filter, q.IncludeGeometry) || len(q.SortBy) > 0 {
		return s.SearchService.Search(ctx, q)
	}
	if page, ok := s.searchMemory(ctx, q); ok {
		s.count(q.Filter, "memory", 1)
		return page, nil
	}
	s.count(q.Filter, "database", 1)
	return s.SearchService.Search(ctx, q)
}

func (s *SearchService) searchMemory(ctx context.Context, q geo.Query) (geo.Page, bool) {
	if q.Filter.Validate() != nil || q.Output.Validate() != nil || q.Limit <= 0 {
		return geo.Page{}, false // the store says what is wrong
	}
	cols, ok := s.scope(ctx, q.Filter)
	if !ok {
		return geo.Page{}, false
	}
	recs, ok := match(nil, cols, q.Filter, *q.Point)
	if !ok {
		return geo.Page{}, false
	}
	return page(recs, q), true
}

// Locate answers a batch from memory when it can (see SearchService), and
// sends it to the store otherwise.
func (s *SearchService) Locate(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	if !pointLookup(locateFilter(q.Filter), q.IncludeGeometry) {
		return s.SearchService.Locate(ctx, q)
	}
	if out, ok := s.locateMemory(ctx, q); ok {
		s.count(q.Filter, "memory", int64(len(out)))
		return out, nil
	}
	s.count(q.Filter, "database", int64(len(q.Points)))
	return s.SearchService.Locate(ctx, q)
}

// Import imports through the store, then makes this instance's reads wait
// for a refresh that sees it (Registry.Wrote), and returns once every
// other live index has it too, or its lease ran out (Peers.AwaitWrite):
// this is where every write of both edges passes before its consistency
// token is stamped.
func (s *SearchService) Import(ctx context.Context, opts geo.ImportOptions, src geo.FeatureSource) (geo.ImportResult, error) {
	res, err := s.SearchService.Import(ctx, opts, src)
	s.written(ctx, err)
	return res, err
}

// Delete deletes through the store, then as Import.
func (s *SearchService) Delete(ctx context.Context, d geo.DeleteRequest) (int64, error) {
	n, err := s.SearchService.Delete(ctx, d)
	s.written(ctx, err)
	return n, err
}

// DeleteCollection deletes through the store, then as Import.
func (s *SearchService) DeleteCollection(ctx context.Context, name string) (int64, error) {
	n, err := s.SearchService.DeleteCollection(ctx, name)
	s.written(ctx, err)
	return n, err
}

// written follows a write, failed or not (a failed import may have
// committed batches).
func (s *SearchService) written(ctx context.Context, err error) {
	s.reg.Wrote()
	s.reg.awaitPeers(ctx, err == nil)
}

// locateFilter is q's filter as one of its points' searches.
func locateFilter(f geo.Filter) geo.Filter {
	f.Point = &geo.Point{}
	return f
}

func (s *SearchService) locateMemory(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, bool) {
	if q.ValidateScope() != nil || q.Limit <= 0 {
		return nil, false // the store says what is wrong
	}
	for _, p := range q.Points {
		if p.Validate() != nil {
			return nil, false
		}
	}
	cols, ok := s.scope(ctx, q.Filter)
	if !ok {
		return nil, false
	}
	// Every answer of the batch in one array, cut per point at the end:
	// no allocation per point (recs is reused too).
	out := make([][]geo.Thing, len(q.Points))
	ends := make([]int32, len(q.Points))
	var all []geo.Thing
	var recs []*record
	size := 0
	n := len(q.Points)
	for i, p := range q.Points {
		if recs, ok = match(recs[:0], cols, q.Filter, p); !ok {
			return nil, false
		}
		if len(recs) > 0 {
			// As the store: once the answers read reach MaxBytes, stop
			// before the next point that has any.
			if q.MaxBytes > 0 && size >= q.MaxBytes {
				n = i
				break
			}
			for _, rec := range recs[:min(len(recs), q.Limit)] {
				all = append(all, shaped(rec, q.Output))
				size += rowBytes(rec, q.Output) + locateOrdinalBytes
			}
		}
		ends[i] = int32(len(all))
	}
	start := int32(0)
	for i := range n {
		if ends[i] > start {
			out[i] = all[start:ends[i]:ends[i]]
		}
		start = ends[i]
	}
	return out[:n], true
}

// pointLookup reports whether f (and the geometry asked for) is a question
// the index can answer: things containing a point, scoped by collections
// and by property filters whose values are strings or booleans, nothing
// else. A field of geo.Filter not named here sends the read to the store
// (TestEveryFilterFieldAnswersAsTheStore checks each).
func pointLookup(f geo.Filter, includeGeometry bool) bool {
	if f.Point == nil || f.MaxDistanceM != 0 || f.Query != "" || f.BBox != nil || f.Area != nil ||
		f.Relation != geo.Intersects || f.Where != nil || includeGeometry {
		return false
	}
	for _, pf := range f.Properties {
		for _, v := range pf.Values {
			switch v.(type) {
			case string, bool:
			default:
				// Numbers: jsonb compares them as numeric, of any
				// precision, which float64 cannot always tell apart.
				return false
			}
		}
	}
	return true
}

// scope returns the collections a read of f sees from memory, or false
// when the registry cannot answer it: nothing published, a collection in
// scope not in memory, a consistency token whose write the published
// snapshot may lack, no token and no lease (lease.go), a write through
// this instance since, or the instance not ready.
func (s *SearchService) scope(ctx context.Context, f geo.Filter) ([]*collection, bool) {
	st := s.reg.state.Load()
	if st == nil || s.reg.notReady.Load() {
		return nil, false
	}
	if p, ok := geo.ReadAfter(ctx); ok {
		if p >= st.snapshot.Before {
			return nil, false
		}
	} else if !s.reg.leased(st) {
		// Without a token, only while the lease holds: writers through
		// other instances may no longer wait for this one.
		s.m.Count("memindex.lease_lapsed", 1)
		return nil, false
	}
	if t := s.reg.wrote.Load(); t != nil && !st.since.After(*t) {
		return nil, false
	}
	var cols []*collection
	if len(f.Collections) == 0 {
		cols = st.all // read only
	} else {
		cols = make([]*collection, 0, len(f.Collections))
		for i, name := range f.Collections {
			c := st.collections[name]
			if c == nil || slices.Contains(f.Collections[:i], name) {
				continue // no such collection in the snapshot: nothing of it
			}
			cols = append(cols, c)
		}
	}
	for _, c := range cols {
		if c.ix == nil {
			return nil, false
		}
	}
	return cols, true
}

// match appends to out the records of cols containing p that pass f's
// property filters, in result order, or returns false when the index is not
// sure of one.
func match(out []*record, cols []*collection, f geo.Filter, p geo.Point) ([]*record, bool) {
	var buf [8]int64
	for _, c := range cols {
		ids, sure := c.ix.Lookup(buf[:0], p.Lng, p.Lat)
		if !sure {
			return nil, false
		}
		for _, id := range ids {
			rec := c.things[id]
			ok, sure := matchProperties(rec.thing.Properties, f.Properties)
			if !sure {
				return nil, false
			}
			if ok {
				out = append(out, rec)
			}
		}
	}
	if len(out) > 1 {
		slices.SortFunc(out, func(a, b *record) int {
			return cmp.Or(cmp.Compare(a.thing.Name, b.thing.Name), cmp.Compare(a.thing.ID, b.thing.ID))
		})
	}
	return out, true
}

// matchProperties is the store's properties @> '{"key": value}' for every
// filter and any of its values (strings and booleans only, see
// pointLookup), or false for sure when it cannot tell: a value that is an
// array or an object, where containment has rules of its own.
func matchProperties(props map[string]any, pfs []geo.PropertyFilter) (ok, sure bool) {
	for _, pf := range pfs {
		v, present := props[pf.Key]
		if !present {
			return false, true
		}
		switch v.(type) {
		case string, bool, float64, nil:
		default:
			return false, false
		}
		if !slices.Contains(pf.Values, v) {
			return false, true
		}
	}
	return true, true
}

// page cuts recs (in result order) into q's page, as the store does.
func page(recs []*record, q geo.Query) geo.Page {
	var p geo.Page
	if q.WithTotal {
		p.Total = int64(len(recs))
	}
	if c := q.After; c != nil {
		recs = slices.DeleteFunc(slices.Clone(recs), func(r *record) bool {
			return cmp.Or(cmp.Compare(r.thing.Name, c.Name), cmp.Compare(r.thing.ID, c.ID)) <= 0
		})
	}
	size := 0
	for _, rec := range recs {
		if len(p.Things) == q.Limit {
			p.Next = &geo.Cursor{Name: p.Things[q.Limit-1].Name, ID: p.Things[q.Limit-1].ID}
			break
		}
		t := shaped(rec, q.Output)
		p.Things = append(p.Things, t)
		if q.MaxBytes > 0 {
			size += rowBytes(rec, q.Output)
			if size >= q.MaxBytes {
				p.Next = &geo.Cursor{Name: t.Name, ID: t.ID}
				break
			}
		}
	}
	return p
}

// shaped is rec's thing with the fields out omits left zero, as the store
// returns them. Properties are shared, not copied: callers only read them.
func shaped(rec *record, out geo.Output) geo.Thing {
	t := rec.thing
	if out.Omit&geo.FieldKey != 0 {
		t.Key = ""
	}
	if out.Omit&geo.FieldCollection != 0 {
		t.Collection = ""
	}
	if out.Omit&geo.FieldProperties != 0 {
		t.Properties = nil
	}
	if out.Omit&geo.FieldBBox != 0 {
		t.BBox = geo.BBox{}
	}
	return t
}

// The bytes of a row's fixed-size columns as the store sends them (the
// id, the four bounds or their constants, Locate's ordinal); the geometry
// column is empty and the distance NULL in a point search.
const (
	idBytes            = 8
	bboxBytes          = 4 * 8
	locateOrdinalBytes = 8
)

// rowBytes is what the store counts for rec's row against MaxBytes.
func rowBytes(rec *record, out geo.Output) int {
	n := idBytes + len(rec.thing.Name) + bboxBytes
	if out.Omit&geo.FieldKey == 0 {
		n += len(rec.thing.Key)
	}
	if out.Omit&geo.FieldCollection == 0 {
		n += len(rec.thing.Collection)
	}
	if out.Omit&geo.FieldProperties == 0 {
		n += rec.propertiesBytes
	}
	return n
}

// count adds n point lookups answered from where to the counter of each
// collection f scopes.
func (s *SearchService) count(f geo.Filter, where string, n int64) {
	if len(f.Collections) == 0 {
		name := "memindex.database.all"
		if where == "memory" {
			name = "memindex.memory.all" // no string built per read
		}
		s.m.Count(name, n)
		return
	}
	for _, c := range f.Collections {
		s.m.Count("memindex."+where+"."+c, n)
	}
}
