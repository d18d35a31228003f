package postgis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/geosearch/search/internal/geo"
)

// fence_outbox.payload (migration 000010) holds a transaction's events in
// this form, version 1, written once by the transaction and read once by
// the relay, possibly of another release (a rolling deploy): a new form
// gets a new version byte, and readers keep reading the old ones.
// fence_payload_internal_test.go holds a golden payload.
//
//	version  byte (1)
//	count    uvarint
//	count times:
//	  collection, device, thing key   uvarint length, then the bytes
//	  type                            byte: 1 enter, 2 exit
//	  seq, thing id                   varint
//	  lat, lng                        8 bytes each, little-endian IEEE 754
//	  time                            varint, microseconds since 1970 UTC
//
// Times keep microseconds, as the timestamptz arrays before them did.
const payloadVersion = 1

// payloadEventBytes is about the most bytes an event takes beside its
// strings.
const payloadEventBytes = 3*binary.MaxVarintLen64 + 1 + 2*binary.MaxVarintLen64 + 16 + binary.MaxVarintLen64

// encodePayload returns events in the payload form.
func encodePayload(events []geo.Event) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, e := range events {
		size += payloadEventBytes + len(e.Collection) + len(e.Device) + len(e.Thing.Key)
	}
	b := make([]byte, 0, size)
	b = append(b, payloadVersion)
	b = binary.AppendUvarint(b, uint64(len(events)))
	for _, e := range events {
		for _, s := range []string{e.Collection, e.Device, e.Thing.Key} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
		typ := byte(2)
		if e.Type == geo.Enter {
			typ = 1
		}
		b = append(b, typ)
		b = binary.AppendVarint(b, e.Seq)
		b = binary.AppendVarint(b, e.Thing.ID)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.Point.Lat))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.Point.Lng))
		b = binary.AppendVarint(b, e.Time.UnixMicro())
	}
	return b
}

var errPayloadShort = errors.New("payload ends inside an event")

// payloadReader reads a payload from its start.
type payloadReader struct {
	b   []byte
	err error
}

func (r *payloadReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *payloadReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *payloadReader) bytes(n uint64) []byte {
	if uint64(len(r.b)) < n {
		r.fail()
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *payloadReader) string() string { return string(r.bytes(r.uvarint())) }

func (r *payloadReader) float() float64 {
	if b := r.bytes(8); b != nil {
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	}
	return 0
}

func (r *payloadReader) fail() {
	if r.err == nil {
		r.err = errPayloadShort
	}
	r.b = nil
}

// appendPayload appends a payload's events to out, each at mark; want is
// the row's events column.
func appendPayload(out []geo.OutboxEvent, p []byte, mark geo.OutboxMark, want int) ([]geo.OutboxEvent, error) {
	if len(p) == 0 || p[0] != payloadVersion {
		return out, fmt.Errorf("outbox row %d/%d: a payload of unknown version", mark.XID, mark.ID)
	}
	r := payloadReader{b: p[1:]}
	n := r.uvarint()
	if r.err != nil || n != uint64(want) {
		return out, fmt.Errorf("outbox row %d/%d: a payload of %d events, the row says %d", mark.XID, mark.ID, n, want)
	}
	for range n {
		e := geo.Event{Collection: r.string(), Device: r.string()}
		e.Thing.Key = r.string()
		switch typ := r.bytes(1); {
		case typ == nil:
		case typ[0] == 1:
			e.Type = geo.Enter
		case typ[0] == 2:
			e.Type = geo.Exit
		default:
			return out, fmt.Errorf("outbox row %d/%d: event type %d", mark.XID, mark.ID, typ[0])
		}
		e.Seq, e.Thing.ID = r.varint(), r.varint()
		e.Point = geo.Point{Lat: r.float(), Lng: r.float()}
		e.Time = time.UnixMicro(r.varint())
		if r.err != nil {
			return out, fmt.Errorf("outbox row %d/%d: %w", mark.XID, mark.ID, r.err)
		}
		out = append(out, geo.OutboxEvent{Mark: mark, Event: e})
	}
	if len(r.b) > 0 {
		return out, fmt.Errorf("outbox row %d/%d: %d bytes after the last event", mark.XID, mark.ID, len(r.b))
	}
	return out, nil
}
