package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
)

// thingJSON is a thing in a locate answer.
type thingJSON struct {
	ID         int64           `json:"id"`
	Key        string          `json:"key,omitempty"`
	Name       string          `json:"name"`
	Collection string          `json:"collection"`
	Properties map[string]any  `json:"properties"`
	BBox       []float64       `json:"bbox"`
	Geometry   json.RawMessage `json:"geometry,omitempty"`
	// DistanceM is set with max_distance_m (0 for a thing containing the
	// point), as gRPC's Thing.distance_m.
	DistanceM *float64 `json:"distance_m,omitempty"`
}

// locateAnswer answers one point. ID is the client's id (POST only).
type locateAnswer struct {
	ID     any         `json:"id,omitempty"`
	Lat    float64     `json:"lat"`
	Lng    float64     `json:"lng"`
	Things []thingJSON `json:"things"`
	Error  *exception  `json:"error,omitempty"`
}

// toThingJSON is t in a locate answer.
func toThingJSON(t geo.Thing) thingJSON {
	tj := thingJSON{
		ID: t.ID, Key: t.Key, Name: t.Name, Collection: t.Collection, Properties: t.Properties,
		BBox:      []float64{t.BBox.MinLng, t.BBox.MinLat, t.BBox.MaxLng, t.BBox.MaxLat},
		DistanceM: t.DistanceM,
	}
	if tj.Properties == nil {
		tj.Properties = map[string]any{}
	}
	if t.GeometryGeoJSON != "" {
		tj.Geometry = json.RawMessage(t.GeometryGeoJSON)
	}
	return tj
}

// locateParam is a parameter of /locate that scopes every point: GET takes
// it beside lat and lng, POST as a query parameter, and it means what the
// LocateOptions field of the same name means to gRPC Locate.
type locateParam struct {
	name string
	// set reads the parameter's value into q.
	set func(s *Server, q *geo.LocateQuery, raw string) error
}

// locateParams are the scope parameters of /locate, one line each. A new
// LocateQuery field (such as nearest's max_distance_m) is one more line
// here, one in openapi.json.tmpl's locateScope parameters, and its setter.
var locateParams = []locateParam{
	{"collections", setLocateCollections},
	{"q", setLocateQuery},
	{"limit", setLocateLimit},
	{"geometry", setLocateGeometry},
	{"max_distance_m", setLocateMaxDistance},
}

// setLocateCollections reads collections: names separated by commas.
func setLocateCollections(_ *Server, q *geo.LocateQuery, raw string) error {
	if raw == "" {
		return geo.Errorf(geo.Invalid, "collections must name at least one collection (names separated by commas); leave it out to search every collection")
	}
	q.Collections = strings.Split(raw, ",")
	return nil
}

// setLocateQuery reads q: a text that the names must contain.
func setLocateQuery(_ *Server, q *geo.LocateQuery, raw string) error {
	q.Query = raw
	return nil
}

// setLocateLimit reads limit, the most things per point, by the rules of
// the items' limit (above the maximum page size: the maximum).
func setLocateLimit(s *Server, q *geo.LocateQuery, raw string) error {
	n, err := s.pageLimit(raw, true)
	q.Limit = n
	return err
}

// setLocateGeometry reads geometry: true includes each thing's geometry.
func setLocateGeometry(_ *Server, q *geo.LocateQuery, raw string) error {
	v, err := strconv.ParseBool(raw)
	if err != nil {
		return geo.Errorf(geo.Invalid, "geometry must be true or false, got %q", raw)
	}
	q.IncludeGeometry = v
	return nil
}

// setLocateMaxDistance reads max_distance_m: metres, which make every point
// a nearest search (the domain validates the value).
func setLocateMaxDistance(_ *Server, q *geo.LocateQuery, raw string) error {
	v, err := parseNumber("max_distance_m", raw)
	if err != nil {
		return err
	}
	q.MaxDistanceM = v
	return nil
}

// locateQuery reads the scope parameters of a /locate request (besides
// those in also, which the caller reads) into the query every point of the
// request is answered with: the default page size of things per point, as
// gRPC Locate's, unless limit says otherwise.
func (s *Server) locateQuery(r *http.Request, also ...string) (geo.LocateQuery, error) {
	known := slices.Clone(also)
	for _, p := range locateParams {
		known = append(known, p.name)
	}
	if err := checkParams(r, known...); err != nil {
		return geo.LocateQuery{}, err
	}
	q := geo.LocateQuery{Limit: s.limits.Load().DefaultPageSize}
	params := r.URL.Query()
	for _, p := range locateParams {
		if params.Has(p.name) {
			if err := p.set(s, &q, params.Get(p.name)); err != nil {
				return geo.LocateQuery{}, err
			}
		}
	}
	// The scope's own errors, before any point, as the domain's Locate
	// finds them.
	if err := q.ValidateScope(); err != nil {
		return geo.LocateQuery{}, err
	}
	return q, nil
}

func parseCoord(name, raw string) (float64, error) {
	if raw == "" {
		return 0, geo.Errorf(geo.Invalid, "%s is required", name)
	}
	return parseNumber(name, raw)
}

// locate answers GET /locate?lat=..&lng=.. and the scope parameters
// (locateParams): the things that contain the point, in (name, id) order.
func (s *Server) locate(w http.ResponseWriter, r *http.Request) error {
	q, err := s.locateQuery(r, "lat", "lng", "f")
	if err != nil {
		return err
	}
	params := r.URL.Query()
	lat, err := parseCoord("lat", params.Get("lat"))
	if err != nil {
		return err
	}
	lng, err := parseCoord("lng", params.Get("lng"))
	if err != nil {
		return err
	}
	p := geo.Point{Lat: lat, Lng: lng}
	if err := p.Validate(); err != nil {
		return err
	}
	var a locateAnswer
	if err := s.answerBatch(r.Context(), s.svc, q, []locateInput{{Lat: lat, Lng: lng}}, func(got locateAnswer) error {
		a = got
		return nil
	}); err != nil {
		return err
	}
	return writeJSON(w, mediaJSON, a)
}

// locateBatch answers POST /locate: points as NDJSON ({"id":..,"lat":..,
// "lng":..} per line) or a GeoJSON FeatureCollection of Points, scoped by
// the query parameters of locateParams; one NDJSON line per point, in input
// order. A bad point gets an error in its own line.
//
// Points are answered in batches, as gRPC Locate answers them: one call of
// the domain's Locate (one statement) per batch of up to LOCATE_BATCH_SIZE
// points, or fewer when LOCATE_BATCH_WAIT passes without the body bringing
// more (a client that sends a line and waits for its answer gets it). The
// body is read as it arrives by one goroutine handing over one point at a
// time; while a batch is in the database or its answers are being written,
// nothing more is read, so memory holds one batch and its answers whatever
// the body's size. Past HTTP_MAX_BODY_BYTES the answer ends with an error
// line.
func (s *Server) locateBatch(w http.ResponseWriter, r *http.Request) error {
	q, err := s.locateQuery(r)
	if err != nil {
		return err
	}
	if err := checkContentEncoding(r); err != nil {
		return err
	}
	const accepted = "application/x-ndjson or application/geo+json"
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return errMediaType(r.Header.Get("Content-Type"), accepted)
	}
	var read func(io.Reader, func(locateInput) error) error
	switch mt {
	case mediaNDJSON, "application/ndjson", "application/jsonl":
		read = readNDJSONPoints
	case mediaGeoJSON, mediaJSON:
		read = readGeoJSONPoints
	default:
		return errMediaType(mt, accepted)
	}
	limit := s.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return geo.Errorf(geo.TooLarge, "the body is %d bytes; the limit is %d (HTTP_MAX_BODY_BYTES): split it", r.ContentLength, limit)
	}
	// Answers go out while the body is still being read: without full
	// duplex, an HTTP/1 server closes the body at the first answer.
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		return err
	}
	lim := s.limits.Load()
	in := readPoints(r.Body, &cappedBody{r: r.Body, limit: limit, idle: s.cfg.BodyIdleTimeout, waiting: rc.SetReadDeadline}, read)
	defer stopReading(in, rc)
	ctx, stop := lookupContext(r.Context(), in)
	defer stop()

	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	started := false
	answer := func(a locateAnswer) error {
		if !started {
			w.Header().Set("Content-Type", mediaNDJSON)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			started = true
		}
		return enc.Encode(a)
	}
	for {
		batch, eof, berr := in.Batch(ctx, nil, max(lim.LocateBatchSize, 1), lim.LocateBatchWait)
		if berr != nil {
			err = berr
			// A stalled body cancels the context too: say why.
			select {
			case <-in.Done():
				if geo.ErrorCode(in.Err()) == geo.Timeout {
					err = in.Err()
				}
			case <-time.After(drainWait):
			}
			break
		}
		if err = s.answerBatch(ctx, slotted{s.svc, s}, q, batch, answer); err != nil {
			break
		}
		if len(batch) > 0 {
			_ = rc.Flush()
		}
		if eof {
			err = in.Err()
			break
		}
	}
	if errors.Is(err, errBodyTooLarge) {
		err = geo.Errorf(geo.TooLarge, "the body exceeds %d bytes (HTTP_MAX_BODY_BYTES): split it", limit)
	}
	// A stalled body's read error also cancels the request's context
	// (net/http does on any read error), but the client is there to read.
	stalled := errors.As(err, new(*geo.Error)) && geo.ErrorCode(err) == geo.Timeout
	if err != nil && started && (r.Context().Err() == nil || stalled) {
		// The answer has begun: the error is its last line.
		_, c, msg, _ := classify(err)
		_ = answer(locateAnswer{Things: []thingJSON{}, Error: &exception{Code: c, Description: msg}})
	}
	if err == nil && !started {
		w.Header().Set("Content-Type", mediaNDJSON)
		w.WriteHeader(http.StatusOK) // no points, no lines
	}
	return err
}

// answerBatch locates a batch's valid points and writes every point's
// answer in order, a bad point's answer being its error: core.LocateBatch,
// the same byte budget and counts as gRPC Locate's.
func (s *Server) answerBatch(ctx context.Context, svc geo.SearchService, q geo.LocateQuery, batch []locateInput, answer func(locateAnswer) error) error {
	points := make([]geo.Point, len(batch))
	errs := make([]error, len(batch))
	for i, in := range batch {
		points[i], errs[i] = geo.Point{Lat: in.Lat, Lng: in.Lng}, in.Err
	}
	return core.LocateBatch(ctx, svc, q, points, errs, s.deps.Metrics, func(i int, things []geo.Thing, err error) error {
		in := batch[i]
		a := locateAnswer{ID: in.ID, Lat: in.Lat, Lng: in.Lng, Things: make([]thingJSON, len(things))}
		if err != nil {
			_, c, msg, _ := classify(err)
			a.Error = &exception{Code: c, Description: msg}
		}
		for j, t := range things {
			a.Things[j] = toThingJSON(t)
		}
		return answer(a)
	})
}
