package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

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
}

// locateAnswer answers one point. ID is the client's id (POST only).
type locateAnswer struct {
	ID     any         `json:"id,omitempty"`
	Lat    float64     `json:"lat"`
	Lng    float64     `json:"lng"`
	Things []thingJSON `json:"things"`
	Error  *exception  `json:"error,omitempty"`
}

// locatePoint returns every thing that contains p, in name order. Until the
// domain has collections and Locate (issues 13 and 14), it pages through
// Search; every thing is in the one collection.
func (s *Server) locatePoint(ctx context.Context, p geo.Point, geometry bool) ([]thingJSON, error) {
	q := geo.Query{Filter: geo.Filter{Point: &p}, Limit: s.limits.Load().MaxPageSize, IncludeGeometry: geometry}
	if err := q.Filter.Validate(); err != nil {
		return nil, err
	}
	out := []thingJSON{}
	for {
		page, err := s.svc.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, t := range page.Things {
			tj := thingJSON{
				ID: t.ID, Key: t.Key, Name: t.Name, Collection: t.Collection, Properties: t.Properties,
				BBox: []float64{t.BBox.MinLng, t.BBox.MinLat, t.BBox.MaxLng, t.BBox.MaxLat},
			}
			if tj.Properties == nil {
				tj.Properties = map[string]any{}
			}
			if t.GeometryGeoJSON != "" {
				tj.Geometry = json.RawMessage(t.GeometryGeoJSON)
			}
			out = append(out, tj)
		}
		s.deps.Metrics.Count("search.results", int64(len(page.Things)))
		if page.Next == nil {
			return out, nil
		}
		q.After = page.Next
	}
}

func parseCoord(name, raw string) (float64, error) {
	if raw == "" {
		return 0, geo.Errorf(geo.Invalid, "%s is required", name)
	}
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return 0, geo.Errorf(geo.Invalid, "%s must be a number, got %q", name, raw)
	}
	return v, nil
}

// locate answers GET /locate?lat=..&lng=..[&geometry=true].
func (s *Server) locate(w http.ResponseWriter, r *http.Request) error {
	params := r.URL.Query()
	for _, later := range []string{"collections", "max_distance_m"} {
		if params.Has(later) {
			return geo.Errorf(geo.Invalid, "parameter %q is not supported yet: it comes with collections and nearest search", later)
		}
	}
	if err := checkParams(r, "lat", "lng", "geometry", "f"); err != nil {
		return err
	}
	lat, err := parseCoord("lat", params.Get("lat"))
	if err != nil {
		return err
	}
	lng, err := parseCoord("lng", params.Get("lng"))
	if err != nil {
		return err
	}
	geometry := false
	if params.Has("geometry") {
		if geometry, err = strconv.ParseBool(params.Get("geometry")); err != nil {
			return geo.Errorf(geo.Invalid, "geometry must be true or false, got %q", params.Get("geometry"))
		}
	}
	things, err := s.locatePoint(r.Context(), geo.Point{Lat: lat, Lng: lng}, geometry)
	if err != nil {
		return err
	}
	return writeJSON(w, mediaJSON, locateAnswer{Lat: lat, Lng: lng, Things: things})
}

// maxLocateLine bounds one NDJSON line of POST /locate.
const maxLocateLine = 64 << 10

// maxDrain is how much of a body POST /locate reads after it stopped early.
const maxDrain = 256 << 10

var errBodyTooLarge = errors.New("the body is larger than HTTP_MAX_BODY_BYTES")

// cappedBody reads at most limit bytes of r, then fails with
// errBodyTooLarge if there is more.
type cappedBody struct {
	r     io.Reader
	limit int64
	read  int64
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.read > c.limit {
		return 0, errBodyTooLarge
	}
	if room := c.limit + 1 - c.read; int64(len(p)) > room {
		p = p[:room] // one byte beyond the limit tells whether there is more
	}
	n, err := c.r.Read(p)
	c.read += int64(n)
	if c.read > c.limit {
		return n - int(c.read-c.limit), errBodyTooLarge
	}
	return n, err
}

// locateInput is one point of a POST /locate body.
type locateInput struct {
	ID       any
	Lat, Lng float64
	// Err, when set, is why the point cannot be located; it is answered
	// in the point's own line and the stream goes on.
	Err error
}

// locateBatch answers POST /locate: points as NDJSON ({"id":..,"lat":..,
// "lng":..} per line) or a GeoJSON FeatureCollection of Points; one NDJSON
// line per point, in input order, written as each is answered. The body is
// read as it arrives, so memory stays bounded whatever its size; past
// HTTP_MAX_BODY_BYTES the answer ends with an error line. A bad point gets an error in its own line.
// Each point is one Search today; gRPC Locate (issue 14) will batch them.
func (s *Server) locateBatch(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "geometry"); err != nil {
		return err
	}
	geometry := false
	if r.URL.Query().Has("geometry") {
		var err error
		if geometry, err = strconv.ParseBool(r.URL.Query().Get("geometry")); err != nil {
			return geo.Errorf(geo.Invalid, "geometry must be true or false, got %q", r.URL.Query().Get("geometry"))
		}
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
	if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
		return err
	}
	body := &cappedBody{r: r.Body, limit: limit}
	// Whatever stopped the answer early (a line too long, a body too
	// large), read on a little so that the client, still sending, gets the
	// answer rather than a reset connection; net/http does the same for
	// handlers that leave a body unread, but not in full duplex.
	defer func() { _, _ = io.CopyN(io.Discard, r.Body, maxDrain) }()
	ctx := r.Context()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	started := false
	flusher, _ := w.(http.Flusher)
	answer := func(a locateAnswer) error {
		if !started {
			w.Header().Set("Content-Type", mediaNDJSON)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			started = true
		}
		if err := enc.Encode(a); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	err = read(body, func(in locateInput) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := locateAnswer{ID: in.ID, Lat: in.Lat, Lng: in.Lng, Things: []thingJSON{}}
		if in.Err == nil {
			a.Things, in.Err = s.locatePoint(ctx, geo.Point{Lat: in.Lat, Lng: in.Lng}, geometry)
		}
		if in.Err != nil {
			if code := geo.ErrorCode(in.Err); code != geo.Invalid {
				return in.Err // the store failed: end the stream
			}
			_, c, msg, _ := classify(in.Err)
			a.Things, a.Error = []thingJSON{}, &exception{Code: c, Description: msg}
		}
		return answer(a)
	})
	if errors.Is(err, errBodyTooLarge) {
		err = geo.Errorf(geo.TooLarge, "the body exceeds %d bytes (HTTP_MAX_BODY_BYTES): split it", limit)
	}
	if err != nil && started && ctx.Err() == nil {
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

// readNDJSONPoints calls fn with each line's point. Blank lines are
// skipped; a line that is not a point object is answered with an error.
func readNDJSONPoints(r io.Reader, fn func(locateInput) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLocateLine)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var p struct {
			ID  any      `json:"id"`
			Lat *float64 `json:"lat"`
			Lng *float64 `json:"lng"`
		}
		in := locateInput{}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		switch err := d.Decode(&p); {
		case err != nil:
			in.Err = geo.Errorf(geo.Invalid, "line %d is not a JSON object with lat and lng: %v", line, err)
		case p.Lat == nil || p.Lng == nil:
			in.ID = p.ID
			in.Err = geo.Errorf(geo.Invalid, "line %d needs both lat and lng", line)
		default:
			in = locateInput{ID: p.ID, Lat: *p.Lat, Lng: *p.Lng}
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return geo.Errorf(geo.TooLarge, "line %d is longer than %d bytes", line+1, maxLocateLine)
	}
	return sc.Err()
}

// readGeoJSONPoints calls fn with each Point feature of a FeatureCollection,
// reading one feature at a time. A feature whose geometry is not a Point is
// answered with an error.
func readGeoJSONPoints(r io.Reader, fn func(locateInput) error) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	notGeoJSON := func(err error) error {
		if errors.Is(err, errBodyTooLarge) {
			return err
		}
		return geo.Errorf(geo.Invalid, "the body is not a GeoJSON FeatureCollection: %v", err)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if err == nil {
			err = errors.New("it does not start with an object")
		}
		return notGeoJSON(err)
	}
	sawFeatures := false
	for dec.More() {
		keyTok, err := dec.Token()
		if err != nil {
			return notGeoJSON(err)
		}
		if keyTok != "features" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return notGeoJSON(err)
			}
			continue
		}
		sawFeatures = true
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return notGeoJSON(errors.New("features is not an array"))
		}
		for i := 0; dec.More(); i++ {
			var f struct {
				ID       any `json:"id"`
				Geometry *struct {
					Type        string            `json:"type"`
					Coordinates []json.RawMessage `json:"coordinates"`
				} `json:"geometry"`
			}
			if err := dec.Decode(&f); err != nil {
				return notGeoJSON(fmt.Errorf("feature %d: %w", i, err))
			}
			in := locateInput{ID: f.ID}
			switch {
			case f.Geometry == nil || f.Geometry.Type != "Point" || len(f.Geometry.Coordinates) < 2:
				in.Err = geo.Errorf(geo.Invalid, "feature %d: the geometry must be a Point", i)
			default:
				lng, err1 := strconv.ParseFloat(string(f.Geometry.Coordinates[0]), 64)
				lat, err2 := strconv.ParseFloat(string(f.Geometry.Coordinates[1]), 64)
				if err1 != nil || err2 != nil {
					in.Err = geo.Errorf(geo.Invalid, "feature %d: the coordinates must be numbers", i)
				}
				in.Lat, in.Lng = lat, lng
			}
			if err := fn(in); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return notGeoJSON(err)
		}
	}
	if !sawFeatures {
		return geo.Errorf(geo.Invalid, "the body is not a GeoJSON FeatureCollection: it has no features member")
	}
	return nil
}
