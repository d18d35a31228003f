package grpcapi

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
)

// filterFromProto validates the filter part of a search request.
func filterFromProto(req *searchv1.SearchRequest) (geo.Filter, error) {
	f, err := convertFilter(req)
	if err != nil {
		return f, err
	}
	return f, f.Validate()
}

// convertFilter is filterFromProto without the filter's validation, which
// the caller does (Locate's scope: geo.LocateQuery.ValidateScope).
func convertFilter(req *searchv1.SearchRequest) (geo.Filter, error) {
	f := geo.Filter{Query: req.GetQuery(), Collections: req.GetCollections(), MaxDistanceM: req.GetMaxDistanceM()}
	if p := req.GetPoint(); p != nil {
		f.Point = &geo.Point{Lat: p.GetLat(), Lng: p.GetLng()}
	}
	if b := req.GetBbox(); b != nil {
		f.BBox = &geo.BBox{MinLng: b.GetMinLng(), MinLat: b.GetMinLat(), MaxLng: b.GetMaxLng(), MaxLat: b.GetMaxLat()}
	}
	if raw := req.GetAreaGeojson(); raw != "" {
		a, err := geo.DecodeArea([]byte(raw))
		if err != nil {
			return f, err
		}
		f.Area = &a
	}
	switch r := req.GetRelation(); r {
	case searchv1.Relation_RELATION_UNSPECIFIED, searchv1.Relation_RELATION_INTERSECTS:
		f.Relation = geo.Intersects
	case searchv1.Relation_RELATION_WITHIN:
		f.Relation = geo.Within
	case searchv1.Relation_RELATION_CONTAINS:
		f.Relation = geo.Contains
	default:
		return f, geo.Errorf(geo.Invalid, "relation %d is not one of RELATION_INTERSECTS, RELATION_WITHIN, RELATION_CONTAINS", int32(r))
	}
	if len(req.GetWhere()) > geo.MaxPropertyFilters {
		// Refused before converting a flood of values.
		return f, geo.Errorf(geo.Invalid, "a search may filter at most %d properties, got %d", geo.MaxPropertyFilters, len(req.GetWhere()))
	}
	for _, w := range req.GetWhere() {
		if len(w.GetValues()) > geo.MaxPropertyValues {
			return f, geo.Errorf(geo.Invalid, "property filters may have at most %d values in all", geo.MaxPropertyValues)
		}
		pf := geo.PropertyFilter{Key: w.GetKey(), Values: make([]any, len(w.GetValues()))}
		for i, v := range w.GetValues() {
			pf.Values[i] = v.AsInterface()
		}
		f.Properties = append(f.Properties, pf)
	}
	return f, nil
}

func collectionToProto(c geo.Collection) *searchv1.Collection {
	pc := &searchv1.Collection{Name: c.Name, Count: c.Count, UpdateTime: timestamppb.New(c.Updated)}
	if c.BBox != nil {
		pc.Bbox = bboxToProto(*c.BBox)
	}
	return pc
}

func bboxToProto(b geo.BBox) *searchv1.BoundingBox {
	return &searchv1.BoundingBox{MinLng: b.MinLng, MinLat: b.MinLat, MaxLng: b.MaxLng, MaxLat: b.MaxLat}
}

// thingToProto converts t, clearing the fields sh's read_mask does not
// select.
func thingToProto(t geo.Thing, sh *shape) (*searchv1.Thing, error) {
	var props *structpb.Struct
	if sh.properties != nil {
		t.Properties = geo.SelectProperties(t.Properties, sh.properties)
	}
	if len(t.Properties) > 0 {
		var err error
		if props, err = structpb.NewStruct(t.Properties); err != nil {
			return nil, fmt.Errorf("thing %d properties: %w", t.ID, err)
		}
	}
	pt := &searchv1.Thing{
		Id:              t.ID,
		Collection:      t.Collection,
		Name:            t.Name,
		Key:             t.Key,
		Properties:      props,
		Bbox:            bboxToProto(t.BBox),
		GeometryGeojson: t.GeometryGeoJSON,
		DistanceM:       t.DistanceM,
	}
	sh.apply(pt)
	return pt, nil
}

// thingMessage is thingToProto(t, sh), kept in t's encodings (when it has
// them) as its encoded bytes: the message returned then holds only those
// bytes, as unknown fields, which protobuf writes out as they are, so an
// answer that holds the thing again neither builds nor marshals it. Its
// fields read as empty in this process; it is meant for the wire only.
// A shape that selects properties by name, a geometry or a distance (never
// in the answers of memory) are built per answer.
func thingMessage(t geo.Thing, sh *shape) (*searchv1.Thing, error) {
	if t.Encodings == nil || sh.properties != nil || sh.unkeyed || t.GeometryGeoJSON != "" || t.DistanceM != nil {
		return thingToProto(t, sh)
	}
	key := sh.cleared | uint64(sh.output.Omit)<<fieldNumbers
	if v, ok := t.Encodings.Load(key); ok {
		return v.(*searchv1.Thing), nil
	}
	pt, err := thingToProto(t, sh)
	if err != nil {
		return nil, err
	}
	b, err := proto.Marshal(pt)
	if err != nil {
		return nil, fmt.Errorf("thing %d: %w", t.ID, err)
	}
	enc := &searchv1.Thing{}
	enc.ProtoReflect().SetUnknown(b)
	t.Encodings.Store(key, enc)
	return enc, nil
}

// fieldNumbers is how many bits of an encoding's key the cleared fields
// take (shape.cleared).
const fieldNumbers = 64 - 8

func importResultToProto(r geo.ImportResult) *searchv1.ImportResponse {
	return &searchv1.ImportResponse{
		Collection:    r.Collection,
		Deleted:       r.Deleted,
		Imported:      int64(r.Imported),
		Repaired:      int64(r.Repaired),
		Rejected:      problemsToProto(r.Rejected.Listed),
		Repairs:       problemsToProto(r.Repairs.Listed),
		RejectedCount: int64(r.Rejected.Count),
		RepairsCount:  int64(r.Repairs.Count),
		Truncated:     r.Truncated(),
	}
}

func problemsToProto(ps []geo.Problem) []*searchv1.ImportProblem {
	out := make([]*searchv1.ImportProblem, len(ps))
	for i, p := range ps {
		out[i] = &searchv1.ImportProblem{Index: int64(p.Index), Name: p.Name, Reason: p.Reason}
	}
	return out
}
