package kafka_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/kafka"
)

// marshalEvent is the event's record value as encoding/json writes it:
// what AppendEvent must write, byte for byte.
func marshalEvent(e geo.Event) ([]byte, error) { return json.Marshal(kafka.NewEventJSON(e)) }

func FuzzAppendEventIsJSONMarshal(f *testing.F) {
	f.Add("dev-1", "zones", "z-12", int64(3), int64(42), 48.85, 2.35, int64(1_700_000_000), uint32(123_456_789), true)
	f.Add(`d"\<>&`, "c", "k\u2028\u2029\x00\x1f\t", int64(-1), int64(0), 0.0, math.Copysign(0, -1), int64(0), uint32(0), false)
	f.Add("d\xff\xfe", "é", "日本", int64(math.MaxInt64), int64(math.MinInt64), 1e-7, -1e-6, int64(-62_135_596_800), uint32(1), true)
	f.Add("d", "c", "k", int64(1), int64(1), 89.999999999999, -179.123456789, int64(253_402_300_799), uint32(999_999_999), false)
	f.Add("d", "c", "k", int64(1), int64(1), 5e-324, 1e21, int64(253_402_300_800), uint32(0), true)
	f.Fuzz(func(t *testing.T, device, collection, key string, seq, id int64, lat, lng float64, unixSec int64, nsec uint32, enter bool) {
		e := geo.Event{Device: device, Collection: collection, Type: geo.Exit, Seq: seq, Thing: geo.FenceThing{ID: id, Key: key},
			Point: geo.Point{Lat: lat, Lng: lng}, Time: time.Unix(unixSec, int64(nsec%1_000_000_000)).In(time.FixedZone("x", 3600))}
		if enter {
			e.Type = geo.Enter
		}
		want, wantErr := marshalEvent(e)
		got, err := kafka.AppendEvent([]byte("prefix"), e)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("AppendEvent error %v, json.Marshal's %v", err, wantErr)
		}
		if err == nil && string(got) != "prefix"+string(want) {
			t.Fatalf("AppendEvent wrote\n%s\njson.Marshal\n%s", got, want)
		}
	})
}

func TestAppendEventOfAYearBeyond9999(t *testing.T) {
	e := geo.Event{Device: "d", Type: geo.Enter, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := kafka.AppendEvent(nil, e); err == nil {
		t.Fatal("AppendEvent encoded the year 10000; json.Marshal refuses it")
	}
}

// decodeJSON is DecodePosition through encoding/json only.
func decodeJSON(key, value []byte) (geo.Fix, error) {
	var p kafka.PositionJSON
	if err := json.Unmarshal(value, &p); err != nil {
		return geo.Fix{}, geo.Errorf(geo.Invalid, "a position must be a JSON object with device, collection, lat, lng and time (RFC 3339): %v", err)
	}
	if p.Lat == nil || p.Lng == nil {
		return geo.Fix{}, geo.Errorf(geo.Invalid, "a position needs lat and lng")
	}
	if len(key) > 0 && string(key) != p.Device {
		return geo.Fix{}, geo.Errorf(geo.Invalid, "the record's key %q is not its device %q: positions are keyed by device", key, p.Device)
	}
	return geo.Fix{Device: p.Device, Collection: p.Collection, Point: geo.Point{Lat: *p.Lat, Lng: *p.Lng}, Time: p.Time}, nil
}

func FuzzDecodePositionIsJSONUnmarshal(f *testing.F) {
	for _, v := range []string{
		string(kafka.EncodePosition(geo.Fix{Device: "dev-1", Collection: "zones", Point: geo.Point{Lat: 48.85, Lng: 2.35}, Time: time.Unix(1_700_000_000, 123_000_000)})),
		string(kafka.EncodePosition(geo.Fix{Device: "é\u2028", Collection: "c", Point: geo.Point{Lat: -1e-7, Lng: 0}, Time: time.Unix(0, 1).In(time.FixedZone("x", -7200))})),
		`{"device":"d","collection":"c","lat":1,"lng":2,"time":"2026-12-07T08:00:00Z"}`,
		`{"time":"2026-12-07T08:00:00.5+01:00","lng":-0.0,"lat":1E+2,"collection":"c","device":"d"}`,
		`{"device":"d","collection":"c","lat":1,"lng":2,"time":"2026-12-07T08:00:00Z","lat":3}`,
		`{"Device":"d","collection":"c","lat":1,"lng":2,"time":"2026-12-07T08:00:00Z"}`,
		`{"device":"d\"","collection":"c","lat":01,"lng":2.,"time":"2026-12-07 08:00:00Z"}`,
		`{"device":"d","collection":"c","lat":1e400,"lng":null,"time":null}`,
		`{"device":"d","lat":1,"lng":2,"extra":[1,2]}`,
		`{"device":"d\u0041","collection":"c","lat":1,"lng":2,"time":"2026-12-07T08:00:00Z"} `,
		`{}`, `{,}`, `{"device":"d",}`, `[]`, `null`, ``, `{"lat":1,"lng":2}`, `{"device":"\xff","lat":-,"lng":2}`,
	} {
		f.Add([]byte("d"), []byte(v))
		f.Add([]byte(nil), []byte(v))
	}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		want, wantErr := decodeJSON(key, value)
		got, err := kafka.DecodePosition(key, value)
		if (err != nil) != (wantErr != nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("DecodePosition(%q): error %v, encoding/json's %v", value, err, wantErr)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("DecodePosition(%q) (-encoding/json +got):\n%s", value, diff)
		}
		if !got.Time.Equal(want.Time) || got.Time.Location().String() != want.Time.Location().String() {
			t.Fatalf("DecodePosition(%q): time %v, encoding/json's %v", value, got.Time, want.Time)
		}
	})
}

// TestDecodePositionReadsEncodePosition: what EncodePosition writes is
// read back, by the hand-written path (no allocation beyond the strings).
func TestDecodePositionReadsEncodePosition(t *testing.T) {
	in := geo.Fix{Device: "dev-1", Collection: "zones", Point: geo.Point{Lat: 48.853, Lng: -2.35}, Time: time.Date(2026, 12, 7, 8, 0, 0, 123456789, time.UTC)}
	value := kafka.EncodePosition(in)
	got, err := kafka.DecodePosition([]byte(in.Device), value)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Fatalf("(-in +out):\n%s", diff)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = kafka.DecodePosition(nil, value) }); n > 2 {
		t.Errorf("DecodePosition allocates %v times; the device and collection strings are 2", n)
	}
}
