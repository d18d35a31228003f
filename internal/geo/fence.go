package geo

import (
	"context"
	"time"
	"unicode/utf8"
)

// Limits of geofencing (docs/GEOFENCE.md).
const (
	// MaxDeviceLength is the longest device id, in bytes.
	MaxDeviceLength = 128
	// MaxFenceThings is the most things of one collection a position may
	// be inside; a position inside more is refused, never truncated.
	MaxFenceThings = 1000
)

// Fix is one position of a tracked device, to be checked against the things
// of Collection.
type Fix struct {
	Device     string
	Collection string
	Point      Point
	Time       time.Time
}

// Validate returns an Invalid error for an empty or too long device id, a
// bad collection name or point, a zero time, or a time more than maxFuture
// after now.
func (p Fix) Validate(now time.Time, maxFuture time.Duration) error {
	return p.validate(now, maxFuture, ValidateCollectionName)
}

// validate is Validate with the collection name's check given (a batch's
// tracker checks each name once).
func (p Fix) validate(now time.Time, maxFuture time.Duration, checkCollection func(string) error) error {
	switch {
	case p.Device == "":
		return Errorf(Invalid, "device must not be empty")
	case len(p.Device) > MaxDeviceLength:
		return Errorf(Invalid, "device is %d bytes long; the limit is %d", len(p.Device), MaxDeviceLength)
	case !utf8.ValidString(p.Device):
		return Errorf(Invalid, "device must be valid UTF-8")
	case p.Time.IsZero():
		return Errorf(Invalid, "time must be set")
	case p.Time.After(now.Add(maxFuture)):
		return Errorf(Invalid, "time %s is more than %s ahead of the server's clock", p.Time.UTC().Format(time.RFC3339Nano), maxFuture)
	}
	if err := checkCollection(p.Collection); err != nil {
		return err
	}
	return p.Point.Validate()
}

// TransitionType is what happened between a device and a thing.
type TransitionType uint8

// The transitions. Cross (passing through a thing between two positions) is
// not computed: the path between two fixes is unknown (docs/GEOFENCE.md).
const (
	Enter TransitionType = iota + 1
	Exit
)

// String is "enter" or "exit".
func (t TransitionType) String() string {
	switch t {
	case Enter:
		return "enter"
	case Exit:
		return "exit"
	}
	return "unknown"
}

// FenceThing is a thing a device is inside, as the tracker remembers it: by
// id, with its key, so that its exit names it even once it is deleted.
type FenceThing struct {
	ID  int64
	Key string
}

// Event is one transition of one device: it entered or left Thing, of
// Collection, at the position Point and Time. Seq numbers the events of
// one device in one collection from 1, without gaps.
type Event struct {
	Device     string
	Collection string
	Type       TransitionType
	Seq        int64
	Thing      FenceThing
	Point      Point
	Time       time.Time
}

// DeviceKey names the state of one device in one collection.
type DeviceKey struct {
	Collection string
	Device     string
}

// DeviceState is what the tracker keeps per device and collection: the
// number of events emitted so far, the time of the last accepted position
// and the things the device was inside then, in id order.
type DeviceState struct {
	Seq      int64
	LastTime time.Time
	Inside   []FenceThing
}

// Offset is the consumed position of one partition of an input topic: the
// batch read From (the offset stored before it) up to Next (the next to
// read). A store applies it only if its stored offset for the partition is
// still From, or if it has none.
type Offset struct {
	Group     string
	Topic     string
	Partition int32
	From      int64
	Next      int64
}

// FenceChange is what one batch changes: the states to store, the states
// to drop, and the events to publish.
type FenceChange struct {
	States  map[DeviceKey]DeviceState
	Deleted []DeviceKey
	Events  []Event
}

// FenceStore keeps the devices' states, the outbox of their events and the
// consumed offsets of the positions topic.
//
// Every method returns Unavailable or Timeout when the store does not
// answer and Internal for anything unexpected.
type FenceStore interface {
	// Apply reads the states of keys (absent ones are missing from the
	// map), locked against other writers, calls step with them, and stores
	// step's change and offsets in the same transaction: all of it, or
	// none if step or the store fails. Returns Aborted (nothing stored)
	// when an offset's stored value is not its From: another consumer
	// moved the partition on.
	Apply(ctx context.Context, keys []DeviceKey, offsets []Offset, step func(map[DeviceKey]DeviceState) (FenceChange, error)) error
	// Offsets returns the stored next offsets of group's partitions of
	// topic.
	Offsets(ctx context.Context, group, topic string) (map[int32]int64, error)
}

// FenceStatus is an instance's geofencing as Monitor reports it: its
// positions consumer's and relay's counts since it started, and the
// device states and outbox events stored for all instances.
type FenceStatus struct {
	PositionsConsumed, PositionsRejected, PositionsStale, Events int64
	EventsPublished, ConsumerLag                                 int64
	DevicesTracked, Outbox                                       int64
}

// OutboxMark is a position in the outbox's commit order: the transaction
// that wrote an event and the event's id within the outbox.
type OutboxMark struct {
	XID uint64
	ID  int64
}

// OutboxEvent is an event waiting to be published, at its mark.
type OutboxEvent struct {
	Mark OutboxMark
	Event
}

// Outbox is the events the FenceStore committed, read by the one relay that
// publishes them.
type Outbox interface {
	// Lead calls fn while this process holds the relay's lock, which at
	// most one process holds at a time; fn's context ends if the lock is
	// lost. Lead waits for the lock until ctx ends.
	Lead(ctx context.Context, fn func(ctx context.Context) error) error
	// Pending returns the events after mark, in commit order, only from
	// transactions that every later reader will see the same way (no
	// event can appear before the last one returned later on). It returns
	// whole transactions, which share one mark: the first one after mark
	// however many events it holds, then as many more as keep the total
	// within n.
	Pending(ctx context.Context, after OutboxMark, n int) ([]OutboxEvent, error)
	// Trim deletes the events up to mark, published.
	Trim(ctx context.Context, upTo OutboxMark) error
}

// EventSource reads the published events.
type EventSource interface {
	// ReadEvents calls fn with every published event from the first, in
	// order per device, never concurrently; with follow it waits for new
	// ones until ctx ends, without it stops at the end as it was at the
	// start. fn's error ends it.
	ReadEvents(ctx context.Context, follow bool, fn func(Event) error) error
}
