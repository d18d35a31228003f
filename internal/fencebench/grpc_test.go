package fencebench_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/server/servertest"
)

// pointsPerMessage is what search-client locate puts in one message of
// Locate's bulk form by default (--points-per-message).
const pointsPerMessage = 500

// startServer runs the real search-server wiring in this process on a
// loopback port, over the fixture's database, with the in-memory index on
// and the other settings at their defaults, and waits until the index
// holds the zones.
func (f *fixture) startServer(b *testing.B) *servertest.Server {
	b.Helper()
	ts := servertest.Start(b, map[string]string{"DATABASE_URL": f.dbURL, "MEMINDEX": "on", "LOG_LEVEL": "info"}, true)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := ts.Client.Monitor(context.Background(), &searchv1.MonitorRequest{})
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range resp.GetMemoryIndexes() {
			if m.GetCollection() == "zones" && m.GetInMemory() {
				return ts
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the server's in-memory index never held zones: %v", resp.GetMemoryIndexes())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// benchLocateGRPC asks the server's public Locate RPC, as a client would,
// for the things containing points: one stream, scoped as the tracker
// scopes its Locate (the collection, at most MaxFenceThings+1 things, no
// properties or boxes), each call a batch of the consumer's size sent in
// messages of pointsPerMessage points while its answers are read. Returns
// the positions/s it reports.
func benchLocateGRPC(b *testing.B, ts *servertest.Server, points []geo.Point) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := ts.Client.Locate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	opts := &searchv1.LocateOptions{Collections: []string{"zones"}, Limit: geo.MaxFenceThings + 1,
		ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"id", "key", "name", "collection"}}}
	if err := stream.Send(&searchv1.LocateRequest{Options: opts}); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, pointsPerMessage)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	n, things := 0, 0
	for b.Loop() {
		start := (n * batch) % len(points)
		sent := make(chan error, 1)
		go func() { sent <- sendPoints(stream, points[start:start+batch], ids) }()
		found, err := readAnswers(stream, batch)
		if err != nil {
			b.Fatal(err)
		}
		things += found
		if err := <-sent; err != nil {
			b.Fatal(err)
		}
		n++
	}
	if err := stream.CloseSend(); err != nil {
		b.Fatal(err)
	}
	rate := float64(n*batch) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "positions/s")
	b.ReportMetric(float64(things)/float64(n*batch), "things/position")
	return rate
}

func sendPoints(stream searchv1.SearchService_LocateClient, points []geo.Point, ids []string) error {
	for len(points) > 0 {
		k := min(len(points), len(ids))
		msg := &searchv1.LocateRequest{Points: make([]*searchv1.LocatePoint, k)}
		for j, p := range points[:k] {
			msg.Points[j] = &searchv1.LocatePoint{Id: ids[j], Point: &searchv1.Point{Lat: p.Lat, Lng: p.Lng}}
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		points = points[k:]
	}
	return nil
}

// readAnswers reads the answers of n points and returns the things found.
func readAnswers(stream searchv1.SearchService_LocateClient, n int) (found int, err error) {
	for got := 0; got < n; {
		resp, err := stream.Recv()
		if err != nil {
			return found, fmt.Errorf("locate answers %d of %d: %w", got, n, err)
		}
		for _, a := range resp.GetAnswers() {
			if a.GetError() != nil {
				return found, fmt.Errorf("locate point %s: %s", a.GetId(), a.GetError().GetMessage())
			}
			found += len(a.GetThings())
		}
		if len(resp.GetAnswers()) == 0 {
			return found, fmt.Errorf("a response without answers to a message with points (id %q)", resp.GetId())
		}
		got += len(resp.GetAnswers())
	}
	return found, nil
}
