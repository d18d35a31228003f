package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geojson"
)

// dataset is an import, encoded before the clock starts.
type dataset struct {
	name string
	// collection receives the import; "" is the default collection.
	collection string
	requests   []*searchv1.ImportRequest
	vertices   int // over the features that decode
}

// loadGeoJSON reads a GeoJSON FeatureCollection (gzip detected) into import
// requests as search-client import does, keyed by name. Vertices are
// counted with the server's own decoder.
func loadGeoJSON(path string) (*dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	ds := &dataset{name: strings.TrimSuffix(strings.TrimSuffix(baseName(path), ".gz"), ".geojson")}
	err = geojson.Scan(r, geojson.ScanOptions{KeyProperty: "name"}, func(rf geo.RawFeature) error {
		req := &searchv1.ImportRequest{Key: rf.Key, Name: rf.Name, GeometryGeojson: string(rf.GeometryJSON)}
		if len(rf.Properties) > 0 {
			props, err := structpb.NewStruct(rf.Properties)
			if err != nil {
				return fmt.Errorf("feature %d: properties: %w", rf.Index, err)
			}
			req.Properties = props
		}
		if f, err := geo.DecodeFeature(rf, geo.Limits{MaxVertices: 10_000_000}); err == nil {
			ds.vertices += f.Geometry.NumCoords()
		}
		ds.requests = append(ds.requests, req)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ds, nil
}

func baseName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// gridCells returns at least n square cells tiling lng [-180, 180] and
// lat [-90, 90], twice as many columns as rows, so that every point of the
// rounds falls in exactly one cell (or on a shared edge, in none).
func gridCells(n int) *dataset {
	rows := 1
	for 2*rows*rows < n {
		rows++
	}
	cols := 2 * rows
	w, h := 360/float64(cols), 180/float64(rows)
	ds := &dataset{name: fmt.Sprintf("grid %dx%d", cols, rows)}
	var b strings.Builder
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for r := range rows {
		for c := range cols {
			x0, y0 := -180+float64(c)*w, -90+float64(r)*h
			x1, y1 := x0+w, y0+h
			if c == cols-1 {
				x1 = 180
			}
			if r == rows-1 {
				y1 = 90
			}
			b.Reset()
			fmt.Fprintf(&b, `{"type":"Polygon","coordinates":[[[%s,%s],[%s,%s],[%s,%s],[%s,%s],[%s,%s]]]}`,
				num(x0), num(y0), num(x1), num(y0), num(x1), num(y1), num(x0), num(y1), num(x0), num(y0))
			ds.requests = append(ds.requests, &searchv1.ImportRequest{
				Name:            fmt.Sprintf("cell %d %d", r, c),
				GeometryGeojson: b.String(),
			})
			ds.vertices += 5
		}
	}
	return ds
}

// importResult is the throughput of one import through the gRPC Import
// stream, from the first message sent to the commit's answer.
type importResult struct {
	Dataset          string  `json:"dataset"`
	Features         int     `json:"features_sent"`
	Imported         int64   `json:"imported"`
	Rejected         int     `json:"rejected"`
	Vertices         int     `json:"vertices"`
	Seconds          float64 `json:"seconds"`
	FeaturesPerSec   float64 `json:"features_per_sec"`
	VerticesPerSec   float64 `json:"vertices_per_sec"`
	TargetSeconds    float64 `json:"target_seconds"`
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	DBCPUSeconds     float64 `json:"db_cpu_seconds"`
	BenchCPUSeconds  float64 `json:"bench_cpu_seconds"` // the client encoding and sending
}

// importDataset streams ds to the server as one import (one transaction).
func importDataset(ctx context.Context, conn *grpc.ClientConn, ds *dataset) (importResult, error) {
	start := time.Now()
	stream, err := searchv1.NewSearchServiceClient(conn).Import(ctx)
	if err != nil {
		return importResult{}, err
	}
	for i, req := range ds.requests {
		if i == 0 && ds.collection != "" {
			req = proto.CloneOf(req)
			req.Options = &searchv1.ImportOptions{Collection: ds.collection}
		}
		if err := stream.Send(req); err != nil {
			_, err = stream.CloseAndRecv() // the server's reason
			return importResult{}, fmt.Errorf("import %s: send feature %d: %w", ds.name, i, err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return importResult{}, fmt.Errorf("import %s: %w", ds.name, err)
	}
	secs := time.Since(start).Seconds()
	return importResult{
		Dataset:        ds.name,
		Features:       len(ds.requests),
		Imported:       resp.GetImported(),
		Rejected:       int(max(resp.GetRejectedCount(), int64(len(resp.GetRejected())))),
		Vertices:       ds.vertices,
		Seconds:        secs,
		FeaturesPerSec: float64(resp.GetImported()) / secs,
		VerticesPerSec: float64(ds.vertices) / secs,
	}, nil
}
