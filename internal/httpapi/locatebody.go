package httpapi

// Reading POST /locate's body: the points of an NDJSON or GeoJSON body, read
// as they arrive on a goroutine of their own, within HTTP_MAX_BODY_BYTES
// and HTTP_BODY_IDLE_TIMEOUT.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/geosearch/search/internal/batching"
	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geojson"
)

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

// drainWait bounds how long POST /locate waits, after stopping early, for
// its body's reader to end.
const drainWait = 2 * time.Second

// readPoints starts reading body (through capped) with read, on a
// goroutine of its own (batching.Read: a Read cannot be interrupted),
// handing over one point at a time. When reading ends early, it reads on a
// little (maxDrain) so that a client still sending gets the answer, not a
// reset connection: net/http does the same for handlers that leave a body
// unread, but not in full duplex.
func readPoints(body io.Reader, capped io.Reader, read func(io.Reader, func(locateInput) error) error) *batching.Reader[locateInput] {
	return batching.Read(func(emit func(locateInput) error) error {
		err := read(capped, emit)
		if err != nil {
			_, _ = io.CopyN(io.Discard, body, maxDrain)
		}
		return err
	}, batching.Options[locateInput]{})
}

// stopReading ends in's goroutine when POST /locate returns. Stopped early
// with the body still coming (the store failed), it gives the reader a
// moment (drainWait) to drain, then ends its read.
func stopReading(in *batching.Reader[locateInput], rc *http.ResponseController) {
	in.Stop()
	select {
	case <-in.Done():
	default:
		_ = rc.SetReadDeadline(time.Now().Add(drainWait))
		<-in.Done()
	}
}

// lookupContext is what POST /locate's lookups run under: the request's
// context, deadline included, except that a body that stalls
// (HTTP_BODY_IDLE_TIMEOUT) does not cancel it. net/http cancels the
// request's context on any error reading the body, the idle deadline's
// too, and a lookup still running then would leave the points already
// read unanswered: on a loaded machine, a client that sent one point and
// paused got an empty answer. When the request's context ends, the
// lookups stop unless in ended on the idle timeout (waited for at most
// drainWait: net/http cancels before the reader sees its error).
func lookupContext(req context.Context, in *batching.Reader[locateInput]) (context.Context, context.CancelFunc) {
	var ctx context.Context
	var cancel context.CancelFunc
	if d, ok := req.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.WithoutCancel(req), d)
	} else {
		ctx, cancel = context.WithCancel(context.WithoutCancel(req))
	}
	unwatch := context.AfterFunc(req, func() {
		select {
		case <-in.Done():
			if geo.ErrorCode(in.Err()) == geo.Timeout {
				return
			}
		case <-time.After(drainWait):
		}
		cancel()
	})
	return ctx, func() { unwatch(); cancel() }
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
