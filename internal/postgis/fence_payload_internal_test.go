package postgis

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/geosearch/search/internal/geo"
)

// goldenPayload is version 1 of fence_outbox.payload for goldenEvents: a
// payload written by this release must read the same in every later one
// (a relay of the next release reads what this one wrote).
const goldenPayload = "01" + "02" + // version, events
	// zones, dev 1, k1, enter, seq 1, id -1, 48.85, 2.35, time
	"057a6f6e6573" + "056465762031" + "026b31" + "01" + "02" + "01" + "cdcccccccc6c4840" + "cdcccccccccc0240" + "8089d6ccd381b106" +
	// zones, dev 1, "", exit, seq 1<<62, id 0, -60, 180, 1 µs before 1970
	"057a6f6e6573" + "056465762031" + "00" + "02" + "80808080808080808001" + "00" + "0000000000004ec0" + "0000000000806640" + "01"

var goldenEvents = []geo.Event{
	{Collection: "zones", Device: "dev 1", Type: geo.Enter, Seq: 1, Thing: geo.FenceThing{ID: -1, Key: "k1"},
		Point: geo.Point{Lat: 48.85, Lng: 2.35}, Time: time.Date(2026, 12, 7, 8, 0, 0, 123456789, time.UTC)},
	{Collection: "zones", Device: "dev 1", Type: geo.Exit, Seq: 1 << 62, Thing: geo.FenceThing{ID: 0, Key: ""},
		Point: geo.Point{Lat: -60, Lng: 180}, Time: time.UnixMicro(-1)},
}

func TestPayloadGolden(t *testing.T) {
	got := hex.EncodeToString(encodePayload(goldenEvents))
	want, err := hex.DecodeString(goldenPayload)
	if err != nil {
		t.Fatal(err)
	}
	mark := geo.OutboxMark{XID: 7, ID: 3}
	events, err := appendPayload(nil, want, mark, len(goldenEvents))
	if err != nil {
		t.Fatal(err)
	}
	var wantEvents []geo.OutboxEvent
	for _, e := range goldenEvents {
		e.Time = e.Time.Truncate(time.Microsecond)
		wantEvents = append(wantEvents, geo.OutboxEvent{Mark: mark, Event: e})
	}
	if diff := cmp.Diff(wantEvents, events); diff != "" {
		t.Errorf("the golden payload read (-want +got):\n%s", diff)
	}
	if got != goldenPayload {
		t.Errorf("encodePayload wrote\n%s\nthe golden payload is\n%s", got, goldenPayload)
	}
}

func TestPayloadRefusesWhatIsNotOne(t *testing.T) {
	good := encodePayload(goldenEvents)
	for name, p := range map[string][]byte{
		"empty":       {},
		"version 2":   append([]byte{2}, good[1:]...),
		"cut short":   good[:len(good)-3],
		"bytes after": append(append([]byte{}, good...), 0),
		"a type of 3": func() []byte { b := encodePayload(goldenEvents[:1]); b[2+1+5+1+5+1+2] = 3; return b }(),
	} {
		if _, err := appendPayload(nil, p, geo.OutboxMark{}, len(goldenEvents)); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
	if _, err := appendPayload(nil, good, geo.OutboxMark{}, 3); err == nil {
		t.Error("a payload of 2 events read as a row of 3")
	}
}
