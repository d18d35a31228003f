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
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/kafka"
)

func newTrackCommand(o *options) *cobra.Command {
	var collection string
	cmd := &cobra.Command{
		Use:   "track --collection NAME FILE|-",
		Short: "Send devices' positions and print the enter and exit events they cause (Track)",
		Long: `Track streams the positions of FILE (- for standard input) to the server's
Track RPC against the things of one collection and prints every event the
positions cause, one JSON object per line (NDJSON), in input order:
device, type (enter or exit), seq (per device and collection, from 1),
time, the thing's id, key and collection, and the position's lat and lng.
The events are also published to the events topic (search-client events).

The input is CSV with the header device,lat,lng,time (columns in any
order, time in RFC 3339), or NDJSON, one {"device":..., "lat":...,
"lng":..., "time":...} object per line (detected by a first line starting
with "{"). A position whose time is not after the device's last one is
ignored (stale); a position the server refuses is reported on standard
error and the run exits 3 at the end. A line that cannot be read stops the
run (exit 2). The stream has no deadline unless --timeout is given.`,
		Example: `  search-client track --collection zones positions.csv
  search-client track --collection zones - < trace.ndjson`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := geo.ValidateCollectionName(collection); err != nil {
				return exitError{exitUsage, fmt.Errorf("--collection: %s", geo.ErrorMessage(err))}
			}
			in, err := openInput(args[0])
			if err != nil {
				return exitError{exitUsage, err}
			}
			defer in.close()
			positions, err := newPositionReader(in, collection)
			if err != nil {
				return exitError{exitUsage, err}
			}
			conn, ctx, cancel, err := o.streamCall(cmd)
			if err != nil {
				return err
			}
			defer conn.Close()
			defer cancel()
			stream, err := searchv1.NewSearchServiceClient(conn).Track(ctx)
			if err != nil {
				return err
			}
			return runTrack(stream, cancel, positions, o)
		},
	}
	cmd.Flags().StringVar(&collection, "collection", "", "the collection whose things fence the devices (required)")
	_ = cmd.MarkFlagRequired("collection")
	return cmd
}

// runTrack sends the positions (sendAll) while it prints the events of
// the answers.
func runTrack(stream searchv1.SearchService_TrackClient, cancel context.CancelFunc, positions *positionReader, o *options) error {
	sendDone := sendAll(stream, positions.next, cancel, nil)
	out := bufio.NewWriterSize(o.stdout, 1<<16)
	var answered, events, stale, rejected int
	var recvErr error
	for {
		resp, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				recvErr = err
			}
			break
		}
		answered++
		if resp.GetStale() {
			stale++
		}
		if e := resp.GetError(); e != nil {
			rejected++
			fmt.Fprintf(o.stderr, "position %d: %s: %s\n", answered, e.GetCode(), e.GetMessage())
		}
		for _, e := range resp.GetEvents() {
			events++
			b, err := json.Marshal(eventJSON(e))
			if err != nil {
				return err
			}
			out.Write(b)
			out.WriteByte('\n')
		}
	}
	flushErr := out.Flush()
	sendErr := <-sendDone
	fmt.Fprintf(o.stderr, "tracked %d positions: %d events, %d stale, %d rejected\n", answered, events, stale, rejected)
	switch {
	case sendErr != nil:
		return sendErr
	case recvErr != nil:
		return recvErr
	case flushErr != nil:
		return flushErr
	case rejected > 0:
		return exitError{exitRejected, fmt.Errorf("%d positions rejected", rejected)}
	}
	return nil
}

// eventJSON is a FenceEvent as the events topic carries it.
func eventJSON(e *searchv1.FenceEvent) kafka.EventJSON {
	typ := geo.Enter
	if e.GetType() == searchv1.FenceEventType_FENCE_EVENT_TYPE_EXIT {
		typ = geo.Exit
	}
	return kafka.NewEventJSON(geo.Event{Device: e.GetDevice(), Collection: e.GetCollection(), Type: typ, Seq: e.GetSeq(),
		Thing: geo.FenceThing{ID: e.GetThingId(), Key: e.GetThingKey()},
		Point: geo.Point{Lat: e.GetPoint().GetLat(), Lng: e.GetPoint().GetLng()}, Time: e.GetTime().AsTime()})
}

// positionReader reads positions as CSV (header device,lat,lng,time) or
// NDJSON.
type positionReader struct {
	collection string
	csv        *csv.Reader
	cols       map[string]int
	lines      *bufio.Scanner
	line       int
}

func newPositionReader(in *input, collection string) (*positionReader, error) {
	r := &positionReader{collection: collection}
	br := bufio.NewReader(in)
	first, _ := br.Peek(1)
	if len(first) == 1 && first[0] == '{' {
		r.lines = bufio.NewScanner(br)
		r.lines.Buffer(make([]byte, 64<<10), 1<<20)
		return r, nil
	}
	r.csv = csv.NewReader(br)
	r.csv.FieldsPerRecord = -1
	header, err := r.csv.Read()
	if err != nil {
		return nil, fmt.Errorf("read the CSV header: %w", err)
	}
	r.line = 1
	r.cols = map[string]int{}
	for i, h := range header {
		r.cols[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, c := range []string{"device", "lat", "lng", "time"} {
		if _, ok := r.cols[c]; !ok {
			return nil, fmt.Errorf("the CSV header must name the columns device, lat, lng and time; %q is missing", c)
		}
	}
	return r, nil
}

// next returns the next position as a request, io.EOF after the last.
func (r *positionReader) next() (*searchv1.TrackRequest, error) {
	r.line++
	var device, lat, lng, at string
	if r.lines != nil {
		for {
			if !r.lines.Scan() {
				if err := r.lines.Err(); err != nil {
					return nil, err
				}
				return nil, io.EOF
			}
			if strings.TrimSpace(r.lines.Text()) != "" {
				break
			}
			r.line++
		}
		var p struct {
			Device string          `json:"device"`
			Lat    json.RawMessage `json:"lat"`
			Lng    json.RawMessage `json:"lng"`
			Time   string          `json:"time"`
		}
		if err := json.Unmarshal(r.lines.Bytes(), &p); err != nil {
			return nil, fmt.Errorf("line %d: %w", r.line, err)
		}
		device, lat, lng, at = p.Device, string(p.Lat), string(p.Lng), p.Time
	} else {
		rec, err := r.csv.Read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("line %d: %w", r.line, err)
		}
		field := func(c string) string {
			if i := r.cols[c]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		device, lat, lng, at = field("device"), field("lat"), field("lng"), field("time")
	}
	return r.request(device, lat, lng, at)
}

func (r *positionReader) request(device, lat, lng, at string) (*searchv1.TrackRequest, error) {
	la, err := strconv.ParseFloat(lat, 64)
	if err != nil {
		return nil, fmt.Errorf("line %d: lat %q is not a number", r.line, lat)
	}
	ln, err := strconv.ParseFloat(lng, 64)
	if err != nil {
		return nil, fmt.Errorf("line %d: lng %q is not a number", r.line, lng)
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return nil, fmt.Errorf("line %d: time %q is not RFC 3339 (e.g. 2026-12-06T10:00:00Z)", r.line, at)
	}
	return &searchv1.TrackRequest{Device: device, Collection: r.collection,
		Point: &searchv1.Point{Lat: la, Lng: ln}, Time: timestamppb.New(t)}, nil
}

func newEventsCommand(o *options, getenv func(string) string) *cobra.Command {
	var (
		follow         bool
		brokers, topic string
	)
	cmd := &cobra.Command{
		Use:   "events [--follow]",
		Short: "Print the geofencing events topic, one JSON object per event",
		Long: `Events reads the events topic from its start as a read_committed consumer
(each published event once, in order per device) and prints one JSON object
per line, as track does. Without --follow it stops at the end of the topic;
with it, it prints new events as they are published.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := bufio.NewWriter(o.stdout)
			defer out.Flush()
			return kafka.ReadEvents(cmd.Context(), kafka.EventsOptions{Brokers: kafka.SplitBrokers(brokers), Topic: topic, Follow: follow}, func(e geo.Event) error {
				b, err := json.Marshal(kafka.NewEventJSON(e))
				if err != nil {
					return err
				}
				out.Write(b)
				out.WriteByte('\n')
				if follow {
					return out.Flush()
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	f.StringVar(&brokers, "brokers", envOr(getenv, "KAFKA_BROKERS", "localhost:9092"), "Kafka brokers, comma separated (env KAFKA_BROKERS)")
	f.StringVar(&topic, "topic", envOr(getenv, "FENCE_EVENTS_TOPIC", "geofence-events"), "events topic (env FENCE_EVENTS_TOPIC)")
	return cmd
}
