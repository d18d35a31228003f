package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// searchFlags are the search command's flags.
type searchFlags struct {
	lat, lng         float64
	query            string
	pageSize         int32
	pageToken        string
	all, asJSON      bool
	includeGeometry  bool
	collections      []string
	where            []string
	maxDistance      string
	bbox             string
	relation         string
	areaFile         string
	consistencyToken string
	fields           []string
	shaping          geometryShaping
	total            bool
	sortBy           string
	properties       []string
}

const searchLong = `Search finds things by any combination (AND) of a point they contain, a text
their name contains, the collections they belong to (--collection, repeatable;
none means all) and property values (--where, repeatable).

--max-distance (with --lat and --lng) makes it a nearest search: the things
containing the point (distance 0) and those within the distance (metres, or
with a unit: 500m, 50km; at most 1000km) on the WGS 84 spheroid, nearest
first, with a DISTANCE column.

--bbox MINLNG,MINLAT,MAXLNG,MAXLAT and --area FILE (a GeoJSON Polygon or
MultiPolygon geometry, a Feature of one, or a FeatureCollection of exactly
one such Feature) keep the things that --relation the box or area:
intersects (the default), within or contains. A box with MINLNG > MAXLNG
crosses the antimeridian. One of a point, a box and an area per search.

--where KEY=VALUE matches the top-level property KEY equal to the string
VALUE; KEY=V1,V2 matches any of them. KEY:=JSON takes JSON values instead,
for numbers and booleans: pop_rank:=1,2 or landlocked:=true. Values are
compared as JSON: the string "1" does not equal the number 1.

--fields id,name,... returns only these fields of each thing (the request's
read_mask): id, name, key, collection, properties, bbox, geometry_geojson, or
* for all; the server then neither reads nor sends the others. The table
shows the fields given, in that order. --simplify and --precision shape the
geometry (--geometry, or geometry_geojson in --fields). --total also prints
how many things match across all pages.`

const searchExample = `  search-client search --lat 48.85 --lng 2.35
  search-client search --lat 48.85 --lng 2.35 --collection countries
  search-client search --query fran --page-size 10
  search-client search --collection countries --where iso_n3=250,276
  search-client search --lat 43.29 --lng 5.36 --max-distance 50km
  search-client search --bbox -10,35,30,60 --relation within
  search-client search --bbox 170,-25,-170,-10                   # across the antimeridian
  search-client search --area alps.geojson --relation intersects
  search-client search --query a --all --json
  search-client search --query an --fields id,name --total
  search-client search --collection countries --sort-by=-iso_n3,name --properties iso_n3
  search-client search --lat 48.85 --lng 2.35 --fields name,geometry_geojson --simplify 0.1 --precision 3 --json`

func newSearchCommand(o *options) *cobra.Command {
	var sf searchFlags
	cmd := &cobra.Command{
		Use:     "search [--lat LAT --lng LNG [--max-distance 50km] | --bbox MINLNG,MINLAT,MAXLNG,MAXLAT | --area FILE.geojson] [--relation intersects|within|contains] [--query TEXT] [--collection NAME]... [--where KEY=VALUE]...",
		Short:   "Find things containing a point, near it, in a box or area, whose name contains a text, in collections, with properties",
		Long:    searchLong,
		Example: searchExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := sf.request(cmd.Flags())
			if err != nil {
				return exitError{exitUsage, err}
			}
			return o.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				client := searchv1.NewSearchServiceClient(conn)
				if sf.all {
					return searchAll(ctx, client, req, o.stdout, sf.asJSON, sf.fields)
				}
				resp, err := client.Search(ctx, req)
				if err != nil {
					return err
				}
				if sf.asJSON {
					return printJSON(o.stdout, resp)
				}
				return printSearchPage(o.stdout, resp, sf.fields, req.GetMaxDistanceM() > 0, sf.total)
			})
		},
	}
	sf.register(cmd.Flags())
	return cmd
}

// register defines the flags on f.
func (sf *searchFlags) register(f *pflag.FlagSet) {
	f.Float64Var(&sf.lat, "lat", 0, "latitude of the point, in [-90, 90]")
	f.Float64Var(&sf.lng, "lng", 0, "longitude of the point, in [-180, 180]")
	f.StringVarP(&sf.query, "query", "q", "", "case-insensitive text the name contains")
	f.Int32Var(&sf.pageSize, "page-size", 0, "things per page (0: the server's default)")
	f.StringVar(&sf.pageToken, "page-token", "", "continue from a previous page")
	f.BoolVar(&sf.all, "all", false, "stream every match (SearchStream) instead of one page")
	consistencyTokenFlag(f, &sf.consistencyToken)
	f.BoolVar(&sf.asJSON, "json", false, "print protojson (one object per thing with --all)")
	f.BoolVar(&sf.includeGeometry, "geometry", false, "include each thing's geometry as GeoJSON (with --json)")
	f.StringArrayVar(&sf.collections, "collection", nil, "only things of this collection (repeatable; none: every collection)")
	f.StringArrayVar(&sf.where, "where", nil, "KEY=VALUE[,VALUE...] (strings) or KEY:=JSON[,JSON...] (numbers, booleans): a top-level property equals one of the values (repeatable: all must match)")
	f.StringVar(&sf.maxDistance, "max-distance", "", "with --lat/--lng: also things within this distance, nearest first (e.g. 500m, 50km; at most 1000km)")
	f.StringVar(&sf.bbox, "bbox", "", "MINLNG,MINLAT,MAXLNG,MAXLAT: things related to this box (MINLNG > MAXLNG crosses the antimeridian)")
	f.StringVar(&sf.areaFile, "area", "", "GeoJSON file: things related to this Polygon or MultiPolygon (a geometry, a Feature, or a FeatureCollection of one)")
	f.StringVar(&sf.relation, "relation", "", "how things relate to --bbox or --area: intersects (default), within, contains")
	f.StringSliceVar(&sf.fields, "fields", nil, "only these fields of each thing, comma-separated (id,name,key,collection,properties,bbox,geometry_geojson; * for all)")
	sf.shaping.flags(f)
	f.BoolVar(&sf.total, "total", false, "also print the number of matches across all pages (show_total_size)")
	f.StringVar(&sf.sortBy, "sort-by", "", "order by these properties, then id: +a,-b (+ ascending, the default; - descending); default: by name")
	f.StringSliceVar(&sf.properties, "properties", nil, "only these top-level property keys in each thing's properties, comma-separated")
}

// request is the SearchRequest the flags f holds ask for; an error is a
// usage error.
func (sf *searchFlags) request(f *pflag.FlagSet) (*searchv1.SearchRequest, error) {
	req := &searchv1.SearchRequest{Query: sf.query, PageSize: sf.pageSize, PageToken: sf.pageToken, IncludeGeometry: sf.includeGeometry, Collections: sf.collections,
		ConsistencyToken: sf.consistencyToken, ReadMask: readMask(sf.fields), SimplifyTolerance: sf.shaping.tolerance, ShowTotalSize: sf.total,
		SortBy: sf.sortBy, Properties: sf.properties}
	if f.Changed("precision") {
		req.CoordinatePrecision = &sf.shaping.precision
	}
	for _, w := range sf.where {
		pf, err := parseWhere(w)
		if err != nil {
			return nil, err
		}
		req.Where = append(req.Where, pf)
	}
	latSet, lngSet := f.Changed("lat"), f.Changed("lng")
	if latSet != lngSet {
		return nil, errors.New("--lat and --lng go together")
	}
	if latSet {
		req.Point = &searchv1.Point{Lat: sf.lat, Lng: sf.lng}
	}
	if err := spatialFlags(req, sf.maxDistance, sf.bbox, sf.relation, sf.areaFile); err != nil {
		return nil, err
	}
	if req.Point == nil && req.Bbox == nil && req.AreaGeojson == "" && sf.query == "" && len(sf.collections) == 0 && len(sf.where) == 0 {
		return nil, errors.New("give --lat and --lng, --bbox, --area, --query, --collection or --where")
	}
	return req, nil
}

// spatialFlags sets the nearest and area fields of req from the flags.
func spatialFlags(req *searchv1.SearchRequest, maxDistance, bbox, relation, areaFile string) error {
	if maxDistance != "" {
		if req.Point == nil {
			return errors.New("--max-distance needs --lat and --lng")
		}
		d, err := parseDistance(maxDistance)
		if err != nil {
			return err
		}
		req.MaxDistanceM = d
	}
	if bbox != "" {
		b, err := parseBBox(bbox)
		if err != nil {
			return err
		}
		req.Bbox = b
	}
	if areaFile != "" {
		raw, err := readArea(areaFile)
		if err != nil {
			return err
		}
		req.AreaGeojson = raw
	}
	switch relation {
	case "":
	case "intersects":
		req.Relation = searchv1.Relation_RELATION_INTERSECTS
	case "within":
		req.Relation = searchv1.Relation_RELATION_WITHIN
	case "contains":
		req.Relation = searchv1.Relation_RELATION_CONTAINS
	default:
		return fmt.Errorf("--relation %q: want intersects, within or contains", relation)
	}
	if relation != "" && req.Bbox == nil && req.AreaGeojson == "" {
		return errors.New("--relation needs --bbox or --area")
	}
	return nil
}

// parseDistance reads a distance in metres: a number, optionally followed
// by the unit m or km ("500", "500m", "2.5km").
func parseDistance(s string) (float64, error) {
	num, scale := strings.TrimSpace(s), 1.0
	switch {
	case strings.HasSuffix(num, "km"):
		num, scale = strings.TrimSuffix(num, "km"), 1000
	case strings.HasSuffix(num, "m"):
		num = strings.TrimSuffix(num, "m")
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("--max-distance %q: want a distance such as 500m or 50km", s)
	}
	return v * scale, nil
}

// parseBBox reads MINLNG,MINLAT,MAXLNG,MAXLAT.
func parseBBox(s string) (*searchv1.BoundingBox, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return nil, fmt.Errorf("--bbox %q: want MINLNG,MINLAT,MAXLNG,MAXLAT", s)
	}
	var v [4]float64
	for i, p := range parts {
		var err error
		if v[i], err = strconv.ParseFloat(strings.TrimSpace(p), 64); err != nil {
			return nil, fmt.Errorf("--bbox %q: %q is not a number", s, p)
		}
	}
	return &searchv1.BoundingBox{MinLng: v[0], MinLat: v[1], MaxLng: v[2], MaxLat: v[3]}, nil
}

// readArea reads a GeoJSON file and returns its geometry: the file's own
// geometry object, a Feature's, or the one Feature's of a
// FeatureCollection. The server checks the geometry itself.
func readArea(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("--area: %w", err)
	}
	var doc struct {
		Type     string          `json:"type"`
		Geometry json.RawMessage `json:"geometry"`
		Features []struct {
			Geometry json.RawMessage `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", fmt.Errorf("--area %s: not GeoJSON: %w", name, err)
	}
	switch doc.Type {
	case "Feature":
		return string(doc.Geometry), nil
	case "FeatureCollection":
		if len(doc.Features) != 1 {
			return "", fmt.Errorf("--area %s: a FeatureCollection of %d features; give one (a Polygon or MultiPolygon)", name, len(doc.Features))
		}
		return string(doc.Features[0].Geometry), nil
	default:
		return string(b), nil
	}
}

// geometryShaping holds the flags that shape returned geometries.
type geometryShaping struct {
	tolerance float64
	precision int32
}

func (g *geometryShaping) flags(f *pflag.FlagSet) {
	f.Float64Var(&g.tolerance, "simplify", 0, "simplify returned geometries with this tolerance, in degrees (0: as stored)")
	f.Int32Var(&g.precision, "precision", 9, "decimal digits of returned geometries' coordinates, 0 to 15")
}

// readMask turns --fields into a read_mask; none is nil (the server's
// default fields).
func readMask(fields []string) *fieldmaskpb.FieldMask {
	if len(fields) == 0 {
		return nil
	}
	return &fieldmaskpb.FieldMask{Paths: fields}
}

// parseWhere parses --where KEY=V1,V2 (string values) or KEY:=J1,J2 (JSON
// scalar values).
func parseWhere(s string) (*searchv1.PropertyFilter, error) {
	key, values, found := strings.Cut(s, "=")
	if !found {
		return nil, fmt.Errorf("--where %q: want KEY=VALUE or KEY:=JSON", s)
	}
	jsonValues := strings.HasSuffix(key, ":")
	key = strings.TrimSuffix(key, ":")
	if key == "" {
		return nil, fmt.Errorf("--where %q: the key is empty", s)
	}
	pf := &searchv1.PropertyFilter{Key: key}
	for _, v := range strings.Split(values, ",") {
		if !jsonValues {
			pf.Values = append(pf.Values, structpb.NewStringValue(v))
			continue
		}
		var x any
		if err := json.Unmarshal([]byte(v), &x); err != nil {
			return nil, fmt.Errorf("--where %q: %q is not a JSON value (quote strings, or use KEY=VALUE)", s, v)
		}
		val, err := structpb.NewValue(x)
		if err != nil {
			return nil, fmt.Errorf("--where %q: %w", s, err)
		}
		pf.Values = append(pf.Values, val)
	}
	return pf, nil
}

func searchAll(ctx context.Context, client searchv1.SearchServiceClient, req *searchv1.SearchRequest, w io.Writer, asJSON bool, fields []string) error {
	stream, err := client.SearchStream(ctx, req)
	if err != nil {
		return err
	}
	tw := newThingTable(w, fields, req.GetMaxDistanceM() > 0)
	for {
		t, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if !asJSON {
				_ = tw.Flush()
			}
			return err
		}
		if asJSON {
			// JSON lines: one protojson Thing per line, nothing else.
			b, err := protojson.Marshal(t)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s\n", b)
			continue
		}
		tw.row(t)
	}
	if asJSON {
		return nil
	}
	return tw.Flush()
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// thingTable prints things as an aligned table; the header is written with
// the first row, so an empty result prints "no matches".
type thingTable struct {
	*tabwriter.Writer
	columns []string
	rows    int
}

// defaultColumns are the table's columns without --fields.
var defaultColumns = []string{"id", "collection", "name", "key", "bbox"}

// newThingTable returns a table of these columns (Thing's field names, or
// * for all of them); none means defaultColumns, after the distance when
// nearest (a nearest search's things carry distance_m).
func newThingTable(w io.Writer, columns []string, nearest bool) *thingTable {
	if len(columns) == 0 {
		columns = defaultColumns
		if nearest {
			columns = append([]string{"distance_m"}, columns...)
		}
	}
	if slices.Contains(columns, "*") {
		columns = []string{"id", "collection", "name", "key", "bbox", "properties", "geometry_geojson"}
		if nearest {
			columns = append([]string{"distance_m"}, columns...)
		}
	}
	return &thingTable{Writer: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0), columns: columns}
}

func (t *thingTable) row(th *searchv1.Thing) {
	if t.rows == 0 {
		header := make([]string, len(t.columns))
		for i, c := range t.columns {
			header[i] = strings.ToUpper(c)
			switch c {
			case "bbox":
				header[i] = "BBOX (min lng, min lat, max lng, max lat)"
			case "distance_m":
				header[i] = "DISTANCE"
			}
		}
		fmt.Fprintln(t, strings.Join(header, "\t"))
	}
	t.rows++
	cells := make([]string, len(t.columns))
	for i, c := range t.columns {
		cells[i] = thingCell(th, c)
	}
	fmt.Fprintln(t, strings.Join(cells, "\t"))
}

// thingCell renders one field of th for the table.
func thingCell(th *searchv1.Thing, field string) string {
	switch field {
	case "id":
		return strconv.FormatInt(th.GetId(), 10)
	case "distance_m":
		return formatDistance(th)
	case "bbox":
		b := th.GetBbox()
		return fmt.Sprintf("%.4f, %.4f, %.4f, %.4f", b.GetMinLng(), b.GetMinLat(), b.GetMaxLng(), b.GetMaxLat())
	}
	fd := th.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(field))
	if fd == nil {
		return ""
	}
	v := th.ProtoReflect().Get(fd)
	if fd.Kind() == protoreflect.MessageKind {
		b, _ := protojson.Marshal(v.Message().Interface())
		return string(b)
	}
	return v.String()
}

// formatDistance renders a thing's distance_m to the metre, "" when absent.
func formatDistance(th *searchv1.Thing) string {
	if th.DistanceM == nil {
		return ""
	}
	return fmt.Sprintf("%.0f m", th.GetDistanceM())
}

// Flush writes the table, or "no matches" when it has no rows.
func (t *thingTable) Flush() error {
	if t.rows == 0 {
		fmt.Fprintln(t, "no matches")
	}
	return t.Writer.Flush()
}

// printSearchPage prints one page of Search as a table, then the total
// (with --total) and the next page's token.
func printSearchPage(w io.Writer, resp *searchv1.SearchResponse, fields []string, nearest, total bool) error {
	tw := newThingTable(w, fields, nearest)
	for _, t := range resp.GetThings() {
		tw.row(t)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if total {
		fmt.Fprintf(w, "total: %d\n", resp.GetTotalSize())
	}
	if resp.GetNextPageToken() != "" {
		fmt.Fprintf(w, "next page: --page-token %s\n", resp.GetNextPageToken())
	}
	return nil
}
