package memindex

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
)

// TestFollowingNeedsThePrimaryOfHalfALeaseAgo: the lease is renewed only
// while the published set's position has reached where the primary was
// half a lease ago; samples newer than that do not count yet, and the ones
// no longer needed are dropped.
func TestFollowingNeedsThePrimaryOfHalfALeaseAgo(t *testing.T) {
	t.Parallel()
	r := NewRegistry(nil, Config{Mode: "on", PollInterval: time.Second, Lease: 2 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.UsePeers(&Peers{lease: 2 * time.Second})
	now := time.Now()
	if err := r.following(now, 0); err != nil {
		t.Fatalf("no sample yet: %v", err)
	}
	r.samples = []sample{
		{at: now.Add(-3 * time.Second), position: 100},
		{at: now.Add(-2 * time.Second), position: 200},
		{at: now.Add(-1500 * time.Millisecond), position: 300}, // the newest at least a second old
		{at: now.Add(-500 * time.Millisecond), position: 400},  // too new to count
	}
	cases := []struct {
		before uint64
		behind bool
	}{
		{299, true},
		{300, false},
		{350, false},
		{1000, false},
	}
	for _, c := range cases {
		err := r.following(now, geo.Position(c.before))
		if got := errors.Is(err, errBehind); got != c.behind {
			t.Errorf("at %d: %v, want behind %v", c.before, err, c.behind)
		}
	}
	if len(r.samples) != 2 || r.samples[0].position != 300 {
		t.Errorf("samples kept: %v, want the one at 300 and the newer one", r.samples)
	}
	if r.interval != 2*time.Second/3 {
		t.Errorf("interval %s: want a refresh (and heartbeat) at least every third of the lease", r.interval)
	}
}
