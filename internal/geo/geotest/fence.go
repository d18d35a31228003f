package geotest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
)

// Tracks returns devices × n positions in collection: each device walks
// from a random start in random steps of up to step degrees (latitudes
// kept within ±80, longitudes wrapped), one position a second from t0.
func Tracks(seed uint64, collection string, devices, n int, step float64, t0 time.Time) []geo.Fix {
	rng := rand.New(rand.NewPCG(seed, 28))
	var out []geo.Fix
	for d := range devices {
		lat, lng := rng.Float64()*160-80, rng.Float64()*360-180
		for i := range n {
			out = append(out, geo.Fix{Device: fmt.Sprintf("dev-%04d", d), Collection: collection,
				Point: geo.Point{Lat: lat, Lng: lng}, Time: t0.Add(time.Duration(i) * time.Second)})
			lat = max(-80, min(80, lat+(rng.Float64()*2-1)*step))
			lng = WrapLng(lng + (rng.Float64()*2-1)*step)
		}
	}
	return out
}

// SearchInside is the oracle's containment: the things Search returns for
// p in its collection (every page), by id.
func SearchInside(t testing.TB, svc geo.SearchService, p geo.Fix) []geo.FenceThing {
	t.Helper()
	out, err := Inside(svc, p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Inside is SearchInside returning its error, for use off a test's
// goroutine.
func Inside(svc geo.SearchService, p geo.Fix) ([]geo.FenceThing, error) {
	q := geo.Query{Filter: geo.Filter{Point: &p.Point, Collections: []string{p.Collection}}, Limit: 1000}
	page, err := svc.Search(context.Background(), q)
	if err != nil {
		return nil, fmt.Errorf("search %v: %w", p.Point, err)
	}
	if page.Next != nil {
		return nil, fmt.Errorf("search %v: more than one page", p.Point)
	}
	out := make([]geo.FenceThing, len(page.Things))
	for i, th := range page.Things {
		out[i] = geo.FenceThing{ID: th.ID, Key: th.Key}
	}
	return out, nil
}

// OracleEvents computes, independently of geo.Tracker, the events that
// positions (applied in order) cause when inside(i) is what contains
// positions[i]: per device and collection, positions not after the last
// accepted time are ignored; then the exits (by id) and the enters (in
// inside's order), numbered per device and collection from 1.
func OracleEvents(positions []geo.Fix, inside func(i int) []geo.FenceThing) []geo.Event {
	type state struct {
		seq  int64
		last time.Time
		in   map[int64]geo.FenceThing
	}
	states := map[geo.DeviceKey]*state{}
	var out []geo.Event
	for i, p := range positions {
		k := geo.DeviceKey{Collection: p.Collection, Device: p.Device}
		s := states[k]
		if s == nil {
			s = &state{in: map[int64]geo.FenceThing{}}
			states[k] = s
		} else if !p.Time.After(s.last) {
			continue
		}
		s.last = p.Time
		now := inside(i)
		nowIDs := map[int64]bool{}
		for _, th := range now {
			nowIDs[th.ID] = true
		}
		var gone []int64
		for id := range s.in {
			if !nowIDs[id] {
				gone = append(gone, id)
			}
		}
		sort.Slice(gone, func(a, b int) bool { return gone[a] < gone[b] })
		emit := func(typ geo.TransitionType, th geo.FenceThing) {
			s.seq++
			out = append(out, geo.Event{Device: p.Device, Collection: p.Collection, Type: typ, Seq: s.seq, Thing: th, Point: p.Point, Time: p.Time})
		}
		for _, id := range gone {
			emit(geo.Exit, s.in[id])
			delete(s.in, id)
		}
		for _, th := range now {
			if _, ok := s.in[th.ID]; !ok {
				emit(geo.Enter, th)
				s.in[th.ID] = th
			}
		}
	}
	return out
}

// SortEvents orders events by collection, device and seq: the order a
// reader of the events topic restores per device.
func SortEvents(events []geo.Event) {
	sort.SliceStable(events, func(a, b int) bool {
		x, y := events[a], events[b]
		if x.Collection != y.Collection {
			return x.Collection < y.Collection
		}
		if x.Device != y.Device {
			return x.Device < y.Device
		}
		return x.Seq < y.Seq
	})
}
