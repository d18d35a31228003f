package geo

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
)

// The fingerprint of a filter ties a page token to the search it was issued
// for. It must survive a rolling deploy: instances of two versions answer
// the pages of one walk, so a filter's fingerprint may change only when the
// filter does. It is therefore an explicit encoding, fingerprintVersion,
// of the canonical filter (Filter.Canonical) that writes only the fields
// that are set, each after a tag of its own: a field added to Filter gets
// a new tag and leaves the fingerprint of every filter without it as it
// was. Tags are never reused. TestFingerprintCoversEveryFilterField fails
// for a Filter field the encoding forgets; the golden tokens in testdata
// fail for an encoding that changes.
const fingerprintVersion = 2

// Filter field tags of the fingerprint encoding.
const (
	tagQuery        = 1
	tagPoint        = 2
	tagMaxDistanceM = 3
	tagBBox         = 4
	tagArea         = 5
	tagRelation     = 6
	tagCollections  = 7
	tagProperties   = 8
	tagWhere        = 9
	// lastLegacyTag is the last tag of the fields the first release's
	// filters had: tokens of filters that set only these are issued in that
	// release's format, which its instances read (legacyFingerprint).
	lastLegacyTag = tagWhere
)

// Expr part tags of the fingerprint encoding.
const (
	exprAnd = iota + 1
	exprOr
	exprNot
	exprCompare
	exprIn
	exprLike
	exprBetween
	exprIsNull
	exprIntersects
)

// fingerprintWriter appends the encoding; each value is length-prefixed or
// of fixed size, so two encodings are equal only for equal filters.
type fingerprintWriter struct {
	b      []byte
	maxTag int // the highest filter field tag written
}

func (w *fingerprintWriter) field(tag int) {
	w.b = binary.AppendUvarint(w.b, uint64(tag))
	w.maxTag = max(w.maxTag, tag)
}

func (w *fingerprintWriter) uvarint(n int) { w.b = binary.AppendUvarint(w.b, uint64(n)) }
func (w *fingerprintWriter) float(v float64) {
	w.b = binary.BigEndian.AppendUint64(w.b, math.Float64bits(v))
}

func (w *fingerprintWriter) string(s string) {
	w.uvarint(len(s))
	w.b = append(w.b, s...)
}

// value writes a property value: a string, a float64 or a bool (Validate
// refuses anything else).
func (w *fingerprintWriter) value(v any) {
	switch v := v.(type) {
	case bool:
		w.b = append(w.b, 'b')
		if v {
			w.b = append(w.b, 1)
		} else {
			w.b = append(w.b, 0)
		}
	case float64:
		w.b = append(w.b, 'f')
		w.float(v)
	case string:
		w.b = append(w.b, 's')
		w.string(v)
	default:
		panic(fmt.Sprintf("geo: fingerprint of a filter that was not validated: value %T", v))
	}
}

func (w *fingerprintWriter) values(vs []any) {
	w.uvarint(len(vs))
	for _, v := range vs {
		w.value(v)
	}
}

// filter writes the set fields of canonical filter f in tag order.
func (w *fingerprintWriter) filter(f Filter) {
	if f.Query != "" {
		w.field(tagQuery)
		w.string(f.Query)
	}
	if f.Point != nil {
		w.field(tagPoint)
		w.float(f.Point.Lat)
		w.float(f.Point.Lng)
	}
	if f.MaxDistanceM != 0 {
		w.field(tagMaxDistanceM)
		w.float(f.MaxDistanceM)
	}
	if f.BBox != nil {
		w.field(tagBBox)
		for _, v := range []float64{f.BBox.MinLng, f.BBox.MinLat, f.BBox.MaxLng, f.BBox.MaxLat} {
			w.float(v)
		}
	}
	if f.Area != nil {
		w.field(tagArea)
		w.string(f.Area.geoJSON)
	}
	if f.Relation != Intersects {
		w.field(tagRelation)
		w.uvarint(int(f.Relation))
	}
	if len(f.Collections) > 0 {
		w.field(tagCollections)
		w.uvarint(len(f.Collections))
		for _, c := range f.Collections {
			w.string(c)
		}
	}
	if len(f.Properties) > 0 {
		w.field(tagProperties)
		w.uvarint(len(f.Properties))
		for _, pf := range f.Properties {
			w.string(pf.Key)
			w.values(pf.Values)
		}
	}
	if f.Where != nil {
		w.field(tagWhere)
		w.expr(*f.Where)
	}
}

// expr writes the set parts of e, each after its tag, and a 0 after them.
func (w *fingerprintWriter) expr(e Expr) {
	list := func(tag int, es []Expr) {
		if len(es) > 0 {
			w.uvarint(tag)
			w.uvarint(len(es))
			for _, x := range es {
				w.expr(x)
			}
		}
	}
	list(exprAnd, e.And)
	list(exprOr, e.Or)
	if e.Not != nil {
		w.uvarint(exprNot)
		w.expr(*e.Not)
	}
	if c := e.Compare; c != nil {
		w.uvarint(exprCompare)
		w.string(c.Property)
		w.string(c.Op)
		w.value(c.Value)
	}
	if in := e.In; in != nil {
		w.uvarint(exprIn)
		w.string(in.Property)
		w.values(in.Values)
	}
	if l := e.Like; l != nil {
		w.uvarint(exprLike)
		w.string(l.Property)
		w.string(l.Pattern)
	}
	if r := e.Between; r != nil {
		w.uvarint(exprBetween)
		w.string(r.Property)
		w.float(r.Low)
		w.float(r.High)
	}
	if e.IsNull != "" {
		w.uvarint(exprIsNull)
		w.string(e.IsNull)
	}
	if e.Intersects != "" {
		w.uvarint(exprIntersects)
		w.string(e.Intersects)
	}
	w.uvarint(0)
}

// filterFingerprint hashes the encoding of canonical f (two filters that
// select the same things, collections or values in another order, share
// it). It also says whether f sets only fields the first release had.
func filterFingerprint(f Filter) (fp uint64, legacy bool) {
	w := fingerprintWriter{b: []byte{fingerprintVersion}}
	w.filter(f.Canonical())
	h := fnv.New64a()
	_, _ = h.Write(w.b)
	return h.Sum64(), w.maxTag <= lastLegacyTag
}

// legacyFilter is geo.Filter as the first release had it, frozen: that
// release fingerprinted the JSON of its whole canonical filter, zero fields
// included, so a field added to Filter would change it. Its tokens (page
// token versions 1 and 2) are still issued for the filters it could express,
// which instances of that release then read during a rolling deploy, and
// read with this. The JSON of the types it holds (Point, BBox, Area,
// PropertyFilter, Expr) is part of it: the golden tokens of that release in
// testdata fail when one changes.
type legacyFilter struct {
	Query        string
	Point        *Point
	MaxDistanceM float64
	BBox         *BBox
	Area         *Area
	Relation     Relation
	Collections  []string
	Properties   []PropertyFilter
	Where        *Expr `json:",omitempty"`
}

// legacyFingerprint is the first release's fingerprint of canonical f,
// which must set only the fields that release had.
func legacyFingerprint(f Filter) uint64 {
	c := f.Canonical()
	//lint:ignore S1016 a literal, so that a field added to Filter leaves legacyFilter as the first release had it
	b, err := json.Marshal(legacyFilter{Query: c.Query, Point: c.Point, MaxDistanceM: c.MaxDistanceM, BBox: c.BBox,
		Area: c.Area, Relation: c.Relation, Collections: c.Collections, Properties: c.Properties, Where: c.Where})
	if err != nil {
		panic(fmt.Sprintf("geo: fingerprint of a filter that was not validated: %v", err))
	}
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}
