package grpcapi

import (
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
)

// filterFromProto validates the filter part of a search request.
func filterFromProto(req *searchv1.SearchRequest) (geo.Filter, error) {
	f := geo.Filter{Query: req.GetQuery()}
	if p := req.GetPoint(); p != nil {
		f.Point = &geo.Point{Lat: p.GetLat(), Lng: p.GetLng()}
	}
	if f.Query == "" && f.Point == nil {
		// The domain lists every thing for an empty filter; the RPC's
		// contract has always asked for a query or a point.
		return f, geo.Errorf(geo.Invalid, "a search needs a query, a point, or both")
	}
	return f, f.Validate()
}

func thingToProto(t geo.Thing) (*searchv1.Thing, error) {
	var props *structpb.Struct
	if len(t.Properties) > 0 {
		var err error
		if props, err = structpb.NewStruct(t.Properties); err != nil {
			return nil, fmt.Errorf("thing %d properties: %w", t.ID, err)
		}
	}
	return &searchv1.Thing{
		Id:         t.ID,
		Name:       t.Name,
		Key:        t.Key,
		Properties: props,
		Bbox: &searchv1.BoundingBox{
			MinLng: t.BBox.MinLng, MinLat: t.BBox.MinLat,
			MaxLng: t.BBox.MaxLng, MaxLat: t.BBox.MaxLat,
		},
		GeometryGeojson: t.GeometryGeoJSON,
	}, nil
}

func importResultToProto(r geo.ImportResult) *searchv1.ImportResponse {
	return &searchv1.ImportResponse{
		Imported: int64(r.Imported),
		Repaired: int64(r.Repaired),
		Rejected: problemsToProto(r.Rejected),
		Repairs:  problemsToProto(r.Repairs),
	}
}

func problemsToProto(ps []geo.Problem) []*searchv1.ImportProblem {
	out := make([]*searchv1.ImportProblem, len(ps))
	for i, p := range ps {
		out[i] = &searchv1.ImportProblem{Index: int64(p.Index), Name: p.Name, Reason: p.Reason}
	}
	return out
}
