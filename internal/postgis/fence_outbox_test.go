package postgis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/postgis"
)

// TestOutboxMigrationKeepsMarks: events written one row each before
// migration 000009 are read after it (and 000010) at the marks they had,
// so a relay's checkpoint written before it still names its place; a
// transaction's events written in arrays (000009) or in a payload (000010)
// form one row, read whole even past Pending's n; going down refuses while
// a payload row (000010) or a many-event row (000009) is left, and
// converts the one-event rows back.
func TestOutboxMigrationKeepsMarks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, mg := newMigrator(t)
	exec := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	migrateDownTo(t, mg, 8) // one row per event
	exec(`INSERT INTO fence_outbox (collection, device, seq, type, thing_id, thing_key, lat, lng, at) VALUES
		('zones', 'a', 1, 'enter', 1, 'k1', 5, 5, now()), ('zones', 'a', 2, 'enter', 2, 'k2', 5, 5, now()),
		('zones', 'b', 1, 'enter', 1, 'k1', 6, 6, now())`)
	exec(`INSERT INTO fence_outbox (collection, device, seq, type, thing_id, thing_key, lat, lng, at) VALUES
		('zones', 'a', 3, 'exit', 1, 'k1', 7, 7, now())`)
	if err := mg.Up(); err != nil {
		t.Fatalf("up with events in the outbox: %v", err)
	}
	pool, err := postgis.Open(ctx, postgis.Config{URL: url, MaxWriteConns: 2}, "postgis-test", postgis.NewStatementTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgis.NewFenceStore(pool)
	pending := func(after geo.OutboxMark, n int) []geo.OutboxEvent {
		t.Helper()
		page, err := store.Pending(ctx, after, n)
		if err != nil {
			t.Fatal(err)
		}
		return page
	}
	lines := func(page []geo.OutboxEvent) []string {
		var out []string
		for _, e := range page {
			out = append(out, fmt.Sprintf("%s %s %s #%d", e.Device, e.Type, e.Thing.Key, e.Seq))
		}
		return out
	}
	old := pending(geo.OutboxMark{}, 100)
	if diff := cmp.Diff([]string{"a enter k1 #1", "a enter k2 #2", "b enter k1 #1", "a exit k1 #3"}, lines(old)); diff != "" {
		t.Fatalf("events from before the migration (-want +got):\n%s", diff)
	}
	for i := 1; i < len(old); i++ {
		if old[i].Mark == old[i-1].Mark {
			t.Fatalf("events %d and %d of one-event rows share the mark %v", i-1, i, old[i].Mark)
		}
	}
	if diff := cmp.Diff([]string{"b enter k1 #1", "a exit k1 #3"}, lines(pending(old[1].Mark, 100))); diff != "" {
		t.Fatalf("events after the second one's mark (-want +got):\n%s", diff)
	}
	exec(`INSERT INTO fence_outbox (events, collections, devices, seqs, types, thing_ids, thing_keys, lats, lngs, ats) VALUES
		(2, '{zones,zones}', '{c,c}', '{1,2}', '{enter,enter}', '{1,2}', '{k1,k2}', '{5,5}', '{5,5}', ARRAY[now(), now()])`)
	batch := pending(old[3].Mark, 1)
	if diff := cmp.Diff([]string{"c enter k1 #1", "c enter k2 #2"}, lines(batch)); diff != "" {
		t.Fatalf("a transaction of two events, n 1 (-want +got):\n%s", diff)
	}
	if batch[0].Mark != batch[1].Mark {
		t.Fatalf("one transaction's events at marks %v and %v", batch[0].Mark, batch[1].Mark)
	}
	// n counts events: the two-event row does not fit after another one.
	if got := lines(pending(old[2].Mark, 2)); len(got) != 1 {
		t.Fatalf("pending 2 after the third event: %v, want only the fourth", got)
	}
	// A payload row, as Apply writes it now.
	err = store.Apply(ctx, nil, nil, func(map[geo.DeviceKey]geo.DeviceState) (geo.FenceChange, error) {
		return geo.FenceChange{Events: []geo.Event{{Device: "e", Collection: "zones", Type: geo.Exit, Seq: 4, Thing: geo.FenceThing{ID: 3, Key: "k3"}, Time: time.Now()}}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	payload := pending(batch[1].Mark, 100)
	if diff := cmp.Diff([]string{"e exit k3 #4"}, lines(payload)); diff != "" {
		t.Fatalf("a payload row after the arrays (-want +got):\n%s", diff)
	}
	migrateDownTo(t, mg, 10) // the later migrations keep no events
	if err := mg.Down(1); err == nil || !strings.Contains(err.Error(), "let the relay empty it first") {
		t.Fatalf("down with a payload row in the outbox: %v, want a refusal", err)
	}
	if err := mg.Force(10); err != nil {
		t.Fatal(err)
	}
	if err := store.Trim(ctx, payload[0].Mark); err != nil {
		t.Fatal(err)
	}
	exec(`INSERT INTO fence_outbox (events, collections, devices, seqs, types, thing_ids, thing_keys, lats, lngs, ats) VALUES
		(2, '{zones,zones}', '{c,c}', '{1,2}', '{enter,enter}', '{1,2}', '{k1,k2}', '{5,5}', '{5,5}', ARRAY[now(), now()])`)
	if err := mg.Down(1); err != nil {
		t.Fatalf("down to 9 with an array row: %v", err)
	}
	if err := mg.Down(1); err == nil || !strings.Contains(err.Error(), "let the relay empty it first") {
		t.Fatalf("down with a batch of events in the outbox: %v, want a refusal", err)
	}
	if err := mg.Force(9); err != nil {
		t.Fatal(err)
	}
	exec(`DELETE FROM fence_outbox`)
	exec(`INSERT INTO fence_outbox (events, collection, device, seq, type, thing_id, thing_key, lat, lng, at) VALUES
		(1, '{zones}', '{d}', '{1}', '{enter}', '{1}', '{k1}', '{5}', '{5}', ARRAY[now()])`)
	pool.Reset() // its statements name the columns' array types
	if err := mg.Down(1); err != nil {
		t.Fatalf("down with one-event rows: %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var device, typ string
	if err := conn.QueryRow(ctx, `SELECT device, type FROM fence_outbox`).Scan(&device, &typ); err != nil {
		t.Fatal(err)
	}
	if device != "d" || typ != "enter" {
		t.Fatalf("after down: %s %s, want d enter", device, typ)
	}
}

// TestOutboxWrittenAfterEvents: Written has a value once Apply committed
// events, none after a batch without events or a failed one, and values
// coalesce (the relay reads every row there is when it wakes).
func TestOutboxWrittenAfterEvents(t *testing.T) {
	t.Parallel()
	_, _, store, _ := newTracker(t)
	ctx := context.Background()
	apply := func(events []geo.Event, fail error) {
		t.Helper()
		err := store.Apply(ctx, nil, nil, func(map[geo.DeviceKey]geo.DeviceState) (geo.FenceChange, error) {
			return geo.FenceChange{Events: events}, fail
		})
		if (err != nil) != (fail != nil) {
			t.Fatalf("apply: %v", err)
		}
	}
	ready := func() bool {
		select {
		case <-store.Written():
			return true
		default:
			return false
		}
	}
	event := []geo.Event{{Device: "d", Collection: "zones", Type: geo.Enter, Seq: 1, Thing: geo.FenceThing{ID: 1, Key: "k"}, Time: time.Now()}}
	apply(nil, nil)
	if ready() {
		t.Fatal("Written after a batch without events")
	}
	apply(event, errors.New("the step failed"))
	if ready() {
		t.Fatal("Written after a batch that stored nothing")
	}
	apply(event, nil)
	apply(event, nil)
	if !ready() {
		t.Fatal("nothing on Written after two batches of events")
	}
	if ready() {
		t.Fatal("a second value on Written: they coalesce")
	}
}

// migrateDownTo migrates down to version, from whatever version is the
// latest: the steps are counted here, so that a later migration does not
// move what the test reaches.
func migrateDownTo(t *testing.T, mg *postgis.Migrator, version uint) {
	t.Helper()
	v, dirty, err := mg.Version()
	if err != nil || dirty || v < version {
		t.Fatalf("migrate down to %d from version %d (dirty %v): %v", version, v, dirty, err)
	}
	if v == version {
		return
	}
	if err := mg.Down(int(v - version)); err != nil {
		t.Fatalf("migrate down to %d from %d: %v", version, v, err)
	}
}
