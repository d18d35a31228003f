package httpapi

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/geosearch/search/internal/batching"
	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geojson"
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

// maxLocateLine bounds one NDJSON line of POST /locate.
const maxLocateLine = 64 << 10

// maxDrain is how much of a body POST /locate reads after it stopped early.
const maxDrain = 256 << 10

var errBodyTooLarge = errors.New("the body is larger than HTTP_MAX_BODY_BYTES")

// cappedBody reads at most limit bytes of r, then fails with
// errBodyTooLarge if there is more. Before each read it calls waiting,
// which moves the connection's read deadline idle ahead: a body that
// stalls fails with a Timeout error instead of holding its connection.
type cappedBody struct {
	r       io.Reader
	limit   int64
	read    int64
	idle    time.Duration
	waiting func(deadline time.Time) error
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.read > c.limit {
		return 0, errBodyTooLarge
	}
	if room := c.limit + 1 - c.read; int64(len(p)) > room {
		p = p[:room] // one byte beyond the limit tells whether there is more
	}
	if c.idle > 0 && c.waiting != nil {
		_ = c.waiting(time.Now().Add(c.idle))
	}
	n, err := c.r.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = geo.Errorf(geo.Timeout, "the body sent nothing for %s (HTTP_BODY_IDLE_TIMEOUT)", c.idle)
	}
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
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	in := readPoints(ctx, r.Body, &cappedBody{r: r.Body, limit: limit, idle: s.cfg.BodyIdleTimeout, waiting: rc.SetReadDeadline}, read)
	defer func() {
		if !in.finished() {
			// Stopped early with the body still coming (the store
			// failed): give the reader a moment to drain, then end its
			// read.
			cancel()
			_ = rc.SetReadDeadline(time.Now().Add(drainWait))
		}
		<-in.done
	}()

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
		batch, eof, berr := in.batch(ctx, max(lim.LocateBatchSize, 1), lim.LocateBatchWait)
		if berr != nil {
			err = berr
			// A stalled body cancels the context too: say why.
			select {
			case <-in.done:
				if geo.ErrorCode(in.err) == geo.Timeout {
					err = in.err
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
			err = in.err
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
// answer in order, a bad point's answer being its error: geo.LocateEach,
// the same batching and byte budget as gRPC Locate's, one statement unless
// the answers pass geo.LocateBatchBytes.
func (s *Server) answerBatch(ctx context.Context, svc geo.SearchService, q geo.LocateQuery, batch []locateInput, answer func(locateAnswer) error) error {
	points := make([]geo.Point, len(batch))
	errs := make([]error, len(batch))
	for i, in := range batch {
		points[i], errs[i] = geo.Point{Lat: in.Lat, Lng: in.Lng}, in.Err
	}
	q.MaxBytes = geo.LocateBatchBytes
	results := 0
	err := geo.LocateEach(ctx, svc, q, points, errs, func(i int, things []geo.Thing, err error) error {
		in := batch[i]
		a := locateAnswer{ID: in.ID, Lat: in.Lat, Lng: in.Lng, Things: make([]thingJSON, len(things))}
		if err != nil {
			_, c, msg, _ := classify(err)
			a.Error = &exception{Code: c, Description: msg}
		}
		for j, t := range things {
			a.Things[j] = toThingJSON(t)
		}
		results += len(things)
		return answer(a)
	})
	if err != nil {
		return err
	}
	s.deps.Metrics.Count("locate.points", int64(len(batch)))
	s.deps.Metrics.Count("search.results", int64(results))
	return nil
}

// drainWait bounds how long POST /locate waits, after stopping early, for
// its body's reader to end.
const drainWait = 2 * time.Second

// pointReader reads a POST /locate body on a goroutine of its own (a Read
// cannot be interrupted), handing over one point at a time.
type pointReader struct {
	points chan locateInput
	done   chan struct{}
	// err is how reading ended (nil at the end of the body); set before
	// done is closed.
	err error
	eof bool
}

// readPoints starts reading body (through capped) with read. When reading
// ends early, it reads on a little (maxDrain) so that a client still
// sending gets the answer, not a reset connection: net/http does the same
// for handlers that leave a body unread, but not in full duplex.
func readPoints(ctx context.Context, body io.Reader, capped io.Reader, read func(io.Reader, func(locateInput) error) error) *pointReader {
	pr := &pointReader{points: make(chan locateInput), done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		defer close(pr.points)
		pr.err = read(capped, func(in locateInput) error {
			select {
			case pr.points <- in:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})
		if pr.err != nil {
			_, _ = io.CopyN(io.Discard, body, maxDrain)
		}
	}()
	return pr
}

// finished reports whether the reader has ended.
func (pr *pointReader) finished() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

// batch returns the next points: at least one, up to size, taking more
// while they come within wait of the first. eof says the body has no
// more (pr.err then says why); an empty batch comes only with eof.
func (pr *pointReader) batch(ctx context.Context, size int, wait time.Duration) (batch []locateInput, eof bool, err error) {
	if pr.eof {
		return nil, true, nil
	}
	select {
	case in, ok := <-pr.points:
		if !ok {
			pr.eof = true
			<-pr.done
			return nil, true, nil
		}
		batch = append(make([]locateInput, 0, min(size, 64)), in)
	case <-ctx.Done():
		return nil, false, context.Cause(ctx)
	}
	batch, eof, err = batching.Fill(ctx, batch, size, wait, pr.points, func(in locateInput) (locateInput, bool, error) { return in, false, nil })
	if eof { // the channel closed: the reader has ended
		pr.eof = true
		<-pr.done
	}
	return batch, eof, err
}

// readNDJSONPoints calls fn with each line's point. Blank lines are
// skipped; a line that is not a point object ({"id":..,"lat":..,"lng":..},
// other members ignored) is answered with an error, its id echoed when it
// can be read, and the stream goes on.
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
		o := objectReader{dec: newDecoder(b), what: fmt.Sprintf("line %d", line)}
		in, err := readPoint(o, func(in *locateInput, name string) (int, error) {
			switch name {
			case "lat":
				v, err := o.number("lat")
				in.Lat = v
				return 1, err
			case "lng":
				v, err := o.number("lng")
				in.Lng = v
				return 1, err
			}
			return 0, nil
		}, "needs both lat and lng")
		if err == nil {
			err = o.end()
		}
		in.Err = err
		if err := fn(in); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return geo.Errorf(geo.TooLarge, "line %d is longer than %d bytes", line+1, maxLocateLine)
	}
	return sc.Err()
}

// readPoint reads one object of o holding a point: its id member (any
// JSON value, echoed in the answer) and what coords reads (it returns
// how many of the point's two coordinates a member held, 0 for a member
// that is not its to read); other members are skipped. missing says what is wanted when a coordinate is
// missing. The point's error, if any, is returned with the id read.
func readPoint(o objectReader, coords func(in *locateInput, name string) (int, error), missing string) (locateInput, error) {
	var in locateInput
	found := 0
	err := o.read(func(name string) error {
		if name == "id" {
			v, err := o.value()
			in.ID = v
			return err
		}
		n, err := coords(&in, name)
		if n > 0 || err != nil {
			found += n
			return err
		}
		return o.skip()
	})
	if err == nil && found < 2 {
		err = geo.Errorf(geo.Invalid, "%s %s", o.what, missing)
	}
	if err != nil {
		in.Lat, in.Lng = 0, 0
	}
	return in, err
}

// readGeoJSONPoints calls fn with each Point feature of a FeatureCollection,
// reading one feature at a time. A feature that is not a Point feature is
// answered with an error, its id echoed when it can be read, and the stream
// goes on; only a body that is not JSON ends it.
func readGeoJSONPoints(r io.Reader, fn func(locateInput) error) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	body := objectReader{dec: dec, what: "the body"}
	sawFeatures := false
	err := body.read(func(name string) error {
		if name != "features" {
			return body.skip()
		}
		sawFeatures = true
		tok, err := dec.Token()
		if err != nil {
			return syntax(body.what, err)
		}
		if tok != json.Delim('[') {
			if err := body.skipRest(tok); err != nil {
				return err
			}
			return errSyntax{geo.Errorf(geo.Invalid, "the body's features member must be an array, got %s", geojson.Kind(tok))}
		}
		for i := 0; dec.More(); i++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return syntax(fmt.Sprintf("feature %d", i), err)
			}
			in, err := readPointFeature(raw, fmt.Sprintf("feature %d", i))
			in.Err = err
			if err := fn(in); err != nil {
				return errSyntax{err} // the caller stopped: end the stream
			}
		}
		_, err = dec.Token() // the closing bracket
		if err != nil {
			return syntax(body.what, err)
		}
		return nil
	})
	if err == nil && !sawFeatures {
		err = geo.Errorf(geo.Invalid, "the body is not a GeoJSON FeatureCollection: it has no features member")
	}
	var ge *geo.Error
	if err != nil && errors.As(err, &ge) && strings.HasPrefix(ge.Message, "the body ") {
		err = geo.Errorf(ge.Code, "the body is not a GeoJSON FeatureCollection: %s", strings.TrimPrefix(ge.Message, "the body "))
	}
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = geo.Errorf(geo.Invalid, "the body has more after its FeatureCollection")
		}
	}
	return err
}

// readPointFeature reads a GeoJSON Feature whose geometry is a Point.
func readPointFeature(raw []byte, what string) (locateInput, error) {
	o := objectReader{dec: newDecoder(raw), what: what}
	return readPoint(o, func(in *locateInput, name string) (int, error) {
		if name != "geometry" {
			return 0, nil
		}
		isPoint, n := false, 0
		err := o.read(func(name string) error {
			switch name {
			case "type":
				v, err := o.value()
				if err != nil {
					return err
				}
				if v != "Point" {
					return geo.Errorf(geo.Invalid, "%s: the geometry must be a Point", what)
				}
				isPoint = true
				return nil
			case "coordinates":
				tok, err := o.dec.Token()
				if err != nil {
					return syntax(what, err)
				}
				if tok != json.Delim('[') {
					if err := o.skipRest(tok); err != nil {
						return err
					}
					return geo.Errorf(geo.Invalid, "%s: the coordinates must be an array [lng, lat]", what)
				}
				var first error
				for ; o.dec.More(); n++ {
					name := []string{"longitude", "latitude"}[min(n, 1)]
					if n >= 2 {
						name = "altitude"
					}
					v, err := o.number(name)
					if err != nil {
						var se errSyntax
						if errors.As(err, &se) {
							return err
						}
						first = cmp.Or(first, err)
					}
					switch n {
					case 0:
						in.Lng = v
					case 1:
						in.Lat = v
					}
				}
				if _, err := o.dec.Token(); err != nil {
					return syntax(what, err)
				}
				return first
			}
			return o.skip()
		})
		if err == nil && (!isPoint || n < 2) {
			err = geo.Errorf(geo.Invalid, "%s: the geometry must be a Point with [lng, lat] coordinates", what)
		}
		if err != nil {
			return 0, err
		}
		return 2, nil
	}, "needs a Point geometry")
}
