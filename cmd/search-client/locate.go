package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// locateFlags are the locate command's flags.
type locateFlags struct {
	collections, where []string
	query              string
	limit              int32
	maxDistance        string
	asCSV              bool
	includeGeometry    bool
	consistencyToken   string
	fields             []string
	shaping            geometryShaping
	perMessage         int
}

const locateLong = `Locate streams the points of FILE (- for standard input) to the server and
writes one answer per point, in input order: a protojson LocateResponse per
line (NDJSON), or with --csv the rows id,thing_id,collection,key,name,error
(one per thing found; a point with none or with an error has one row).

--max-distance makes every point a nearest search: the things containing it
(distance 0) and those within the distance (metres, or with a unit: 500m,
5km; at most 1000km), nearest first, each with its distance_m (a column
distance_m after name with --csv).

The input is CSV, id,lat,lng per line (a header naming the columns id, lat
and lng, in any order, is optional), or NDJSON, one {"id":..., "lat":...,
"lng":...} object per line (detected by a first line starting with "{").
Input and output stream: memory stays bounded whatever the file's size.
A line that cannot be read (not a number, missing column) stops the run
(exit 2); a point the server refuses (out of range) gets an error in its
answer, and the run exits 3 at the end. While it runs, a progress line on
standard error shows the points sent and answered, the rate, the time
elapsed and how much of FILE was read, when standard error is a terminal
and standard output is not; at the end a one-line summary goes to
standard error.
The stream has no deadline unless --timeout is given.`

func newLocateCommand(o *options) *cobra.Command {
	var lf locateFlags
	cmd := &cobra.Command{
		Use:   "locate [--collection NAME]... [--where KEY=VALUE]... [--max-distance 5km] [--limit N] [--csv] FILE|-",
		Short: "Find the things containing each of many points (Locate)",
		Long:  locateLong,
		Example: `  search-client locate points.csv
  search-client locate --collection countries --csv - < points.csv
  search-client locate --where iso_n3=250 trace.ndjson
  search-client locate --collection countries --max-distance 5km --csv harbours.csv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := lf.options(cmd.Flags())
			if err != nil {
				return exitError{exitUsage, err}
			}
			in, err := openInput(args[0])
			if err != nil {
				return exitError{exitUsage, err}
			}
			defer in.close()
			points, err := newPointReader(in)
			if err != nil {
				return exitError{exitUsage, err}
			}
			conn, ctx, cancel, err := o.streamCall(cmd)
			if err != nil {
				return err
			}
			defer conn.Close()
			defer cancel()
			stream, err := searchv1.NewSearchServiceClient(conn).Locate(ctx)
			if err != nil {
				return err
			}
			prog := newProgress(o.stderr, o.stdout, "locate", "points", true, in)
			defer prog.stop()
			if err := points.setPerMessage(lf.perMessage); err != nil {
				return exitError{exitUsage, err}
			}
			// Given, it is used as it is; else the server says whether it
			// takes the bulk form (negotiated).
			points.bulkKnown = cmd.Flags().Changed("points-per-message")
			return runLocate(stream, cancel, opts, points, o, lf.asCSV, prog)
		},
	}
	lf.register(cmd.Flags())
	return cmd
}

// register defines the flags on f.
func (lf *locateFlags) register(f *pflag.FlagSet) {
	f.StringArrayVar(&lf.collections, "collection", nil, "only things of this collection (repeatable; none: every collection)")
	f.StringArrayVar(&lf.where, "where", nil, "KEY=VALUE[,VALUE...] or KEY:=JSON[,JSON...]: a top-level property equals one of the values (repeatable: all must match)")
	f.StringVarP(&lf.query, "query", "q", "", "only things whose name contains this text")
	f.Int32Var(&lf.limit, "limit", 0, "most things per point (0: the server's default page size)")
	f.StringVar(&lf.maxDistance, "max-distance", "", "also things within this distance of each point, nearest first (e.g. 500m, 5km; at most 1000km)")
	f.BoolVar(&lf.asCSV, "csv", false, "write CSV rows instead of NDJSON")
	consistencyTokenFlag(f, &lf.consistencyToken)
	f.BoolVar(&lf.includeGeometry, "geometry", false, "include each thing's geometry as GeoJSON (NDJSON only)")
	f.StringSliceVar(&lf.fields, "fields", nil, "only these fields of each thing, comma-separated (id,name,key,collection,properties,bbox,geometry_geojson; * for all); CSV columns not selected stay empty")
	lf.shaping.flags(f)
	f.IntVar(&lf.perMessage, "points-per-message", defaultPointsPerMessage, "points sent in one message (LocateRequest.points); 1 sends a message per point. Not given: 500 when the server says it takes the bulk form, else 1")
}

// options are the LocateOptions the flags f hold; an error is a usage
// error.
func (lf *locateFlags) options(f *pflag.FlagSet) (*searchv1.LocateOptions, error) {
	opts := &searchv1.LocateOptions{Collections: lf.collections, Query: lf.query, Limit: lf.limit, IncludeGeometry: lf.includeGeometry,
		ConsistencyToken: lf.consistencyToken, ReadMask: readMask(lf.fields), SimplifyTolerance: lf.shaping.tolerance}
	if f.Changed("precision") {
		opts.CoordinatePrecision = &lf.shaping.precision
	}
	if lf.maxDistance != "" {
		d, err := parseDistance(lf.maxDistance)
		if err != nil {
			return nil, err
		}
		opts.MaxDistanceM = d
	}
	for _, w := range lf.where {
		pf, err := parseWhere(w)
		if err != nil {
			return nil, err
		}
		opts.Where = append(opts.Where, pf)
	}
	return opts, nil
}

// runLocate sends the points on a goroutine while this one writes the
// answers: each side streams, and gRPC flow control holds the sender back
// when the answers are not read fast enough.
func runLocate(stream searchv1.SearchService_LocateClient, cancel context.CancelFunc, opts *searchv1.LocateOptions,
	points *pointReader, o *options, asCSV bool, prog *progress) error {
	// The options go first, then the points; an EOF here is the server
	// ending the stream, which Recv explains.
	var sendDone <-chan error
	if err := stream.Send(&searchv1.LocateRequest{Options: opts}); err != nil && !errors.Is(err, io.EOF) {
		failed := make(chan error, 1)
		failed <- err
		sendDone = failed
	} else {
		next := points.nextMessage
		if !points.bulkKnown {
			next = points.negotiated(stream)
		}
		sendDone = sendAll(stream, next, cancel, func(req *searchv1.LocateRequest) {
			prog.addSentN(max(len(req.Points), 1))
		})
	}

	out := bufio.NewWriterSize(o.stdout, 1<<16)
	cw := csv.NewWriter(out)
	withDistance := opts.GetMaxDistanceM() > 0
	if asCSV {
		header := []string{"id", "thing_id", "collection", "key", "name", "error"}
		if withDistance {
			header = []string{"id", "thing_id", "collection", "key", "name", "distance_m", "error"}
		}
		_ = cw.Write(header)
	}
	var answered, withThings, failed int
	var recvErr error
	for {
		resp, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				recvErr = err
			}
			break
		}
		each := resp.GetAnswers()
		if len(each) == 0 {
			each = []*searchv1.LocateResponse{resp}
		}
		for _, resp := range each {
			answered++
			prog.addAnswered()
			switch {
			case resp.GetError() != nil:
				failed++
			case len(resp.GetThings()) > 0:
				withThings++
			}
			if asCSV {
				writeLocateCSV(cw, resp, withDistance)
			} else {
				b, err := protojson.Marshal(resp)
				if err != nil {
					return err
				}
				out.Write(b)
				out.WriteByte('\n')
			}
		}
	}
	cw.Flush()
	flushErr := out.Flush()
	sendErr := <-sendDone
	prog.stop()
	fmt.Fprintf(o.stderr, "located %d points (%d inside something, %d errors) %s\n", answered, withThings, failed, prog.timing())
	switch {
	case sendErr != nil:
		return sendErr
	case recvErr != nil:
		return recvErr
	case flushErr != nil:
		return flushErr
	case failed > 0:
		return exitError{exitRejected, fmt.Errorf("%d points could not be located (see their errors)", failed)}
	}
	return nil
}

// writeLocateCSV writes one answer's rows; withDistance adds the column
// distance_m before error.
func writeLocateCSV(cw *csv.Writer, resp *searchv1.LocateResponse, withDistance bool) {
	write := func(thingID, collection, key, name, distance, errText string) {
		rec := []string{resp.GetId(), thingID, collection, key, name, errText}
		if withDistance {
			rec = []string{resp.GetId(), thingID, collection, key, name, distance, errText}
		}
		_ = cw.Write(rec)
	}
	if e := resp.GetError(); e != nil {
		write("", "", "", "", "", e.GetCode()+": "+e.GetMessage())
		return
	}
	if len(resp.GetThings()) == 0 {
		write("", "", "", "", "", "")
		return
	}
	for _, t := range resp.GetThings() {
		id := "" // not selected by --fields: ids start at 1
		if t.GetId() != 0 {
			id = strconv.FormatInt(t.GetId(), 10)
		}
		distance := ""
		if t.DistanceM != nil {
			distance = strconv.FormatFloat(t.GetDistanceM(), 'f', 1, 64)
		}
		write(id, t.GetCollection(), t.GetKey(), t.GetName(), distance, "")
	}
}

// pointReader reads points from CSV or NDJSON, one at a time.
type pointReader struct {
	ndjson *bufio.Scanner
	csv    *csv.Reader
	// cols are the CSV columns of id, lat and lng.
	cols [3]int
	// first is the first CSV record when it was no header.
	first []string
	line  int
	// src is the input's buffer: nothing in it means the next read may
	// wait (standard input), so a message is sent first.
	src *bufio.Reader
	// perMessage is the most points nextMessage puts in one message.
	perMessage int
	// bulkKnown: --points-per-message was given, so the server is not
	// asked whether it takes the bulk form.
	bulkKnown bool
}

func newPointReader(r io.Reader) (*pointReader, error) {
	br := bufio.NewReader(r)
	for {
		b, err := br.Peek(1)
		if err != nil {
			break // empty input: CSV of nothing
		}
		if b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n' {
			_, _ = br.ReadByte()
			continue
		}
		if b[0] == '{' {
			sc := bufio.NewScanner(br)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			return &pointReader{ndjson: sc, src: br}, nil
		}
		break
	}
	p := &pointReader{csv: csv.NewReader(br), cols: [3]int{0, 1, 2}, src: br}
	p.csv.FieldsPerRecord = -1
	p.csv.TrimLeadingSpace = true
	p.csv.ReuseRecord = true
	rec, err := p.csv.Read()
	if errors.Is(err, io.EOF) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("line 1: %w", err)
	}
	p.line = 1
	seen := 0
	for i, name := range rec {
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "id":
			p.cols[0], seen = i, seen|1
		case "lat":
			p.cols[1], seen = i, seen|2
		case "lng", "lon":
			p.cols[2], seen = i, seen|4
		}
	}
	switch {
	case seen == 7: // a header
	case seen != 0:
		return nil, fmt.Errorf("line 1: a header must name the columns id, lat and lng")
	default:
		p.cols = [3]int{0, 1, 2}
		p.first = append([]string(nil), rec...)
	}
	return p, nil
}

// next returns the next point's request, io.EOF after the last.
func (p *pointReader) next() (*searchv1.LocateRequest, error) {
	if p.ndjson != nil {
		for p.ndjson.Scan() {
			p.line++
			line := strings.TrimSpace(p.ndjson.Text())
			if line == "" {
				continue
			}
			var v struct {
				ID       json.RawMessage `json:"id"`
				Lat, Lng *float64
			}
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				return nil, fmt.Errorf("line %d: %w", p.line, err)
			}
			if v.Lat == nil || v.Lng == nil {
				return nil, fmt.Errorf("line %d: want {\"id\": ..., \"lat\": ..., \"lng\": ...}", p.line)
			}
			id := string(v.ID)
			var s string
			if json.Unmarshal(v.ID, &s) == nil {
				id = s // a string id without its quotes; numbers as written
			}
			return &searchv1.LocateRequest{Id: id, Point: &searchv1.Point{Lat: *v.Lat, Lng: *v.Lng}}, nil
		}
		if err := p.ndjson.Err(); err != nil {
			return nil, fmt.Errorf("line %d: %w", p.line+1, err)
		}
		return nil, io.EOF
	}
	rec := p.first
	p.first = nil
	if rec == nil {
		var err error
		if rec, err = p.csv.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, err
		}
		p.line++
	}
	line, _ := p.csv.FieldPos(0)
	for _, c := range p.cols {
		if c >= len(rec) {
			return nil, fmt.Errorf("line %d: want id,lat,lng", line)
		}
	}
	lat, err := strconv.ParseFloat(strings.TrimSpace(rec[p.cols[1]]), 64)
	if err != nil {
		return nil, fmt.Errorf("line %d: lat %q is not a number", line, rec[p.cols[1]])
	}
	lng, err := strconv.ParseFloat(strings.TrimSpace(rec[p.cols[2]]), 64)
	if err != nil {
		return nil, fmt.Errorf("line %d: lng %q is not a number", line, rec[p.cols[2]])
	}
	return &searchv1.LocateRequest{Id: rec[p.cols[0]], Point: &searchv1.Point{Lat: lat, Lng: lng}}, nil
}
