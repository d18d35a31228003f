package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/geosearch/search/internal/geo"
)

// FenceConfig is the geofencing configuration (docs/GEOFENCE.md): its
// topics, consumer group and relay, over the brokers of KAFKA_BROKERS.
type FenceConfig struct {
	// Enabled runs the relay of events to Kafka and the positions
	// consumer; the gRPC Track stream works either way.
	Enabled bool `env:"FENCE_ENABLED, default=false"`
	// PositionsTopic is read, keyed by device, by one consumer group.
	PositionsTopic string `env:"FENCE_POSITIONS_TOPIC, default=geofence-positions"`
	// EventsTopic receives the enter and exit events, keyed by device.
	EventsTopic string `env:"FENCE_EVENTS_TOPIC, default=geofence-events"`
	// CheckpointTopic holds the relay's position, committed with each
	// batch of events (its partition 0 only).
	CheckpointTopic string `env:"FENCE_CHECKPOINT_TOPIC, default=geofence-relay-checkpoints"`
	// Group is the positions consumer group shared by the instances.
	Group string `env:"FENCE_GROUP, default=search-geofence"`
	// RelayTxnID is the relay's Kafka transactional id, the same on every
	// instance: a new relay fences the one before it.
	RelayTxnID string `env:"FENCE_RELAY_TXN_ID, default=search-geofence-relay"`
	// MaxFuture is how far ahead of the server's clock a position's time
	// may be.
	MaxFuture time.Duration `env:"FENCE_MAX_FUTURE, default=5m"`
	// Batch is the most positions applied, or events relayed, in one
	// transaction. A poll takes what is waiting, up to this: only a
	// backlog makes full batches, and there larger ones cost less per
	// position (10,000 against 5,000: about a fifth less of PostgreSQL's
	// CPU, docs/GEOFENCE.md).
	Batch int `env:"FENCE_BATCH, default=10000"`
}

// Validate reports every invalid setting.
func (c FenceConfig) Validate() error {
	var errs []error
	for _, s := range []struct{ name, value string }{
		{"FENCE_POSITIONS_TOPIC", c.PositionsTopic}, {"FENCE_EVENTS_TOPIC", c.EventsTopic},
		{"FENCE_CHECKPOINT_TOPIC", c.CheckpointTopic}, {"FENCE_GROUP", c.Group}, {"FENCE_RELAY_TXN_ID", c.RelayTxnID},
	} {
		if c.Enabled && strings.TrimSpace(s.value) == "" {
			errs = append(errs, fmt.Errorf("%s must not be empty when FENCE_ENABLED is set", s.name))
		}
	}
	if c.MaxFuture < 0 {
		errs = append(errs, fmt.Errorf("FENCE_MAX_FUTURE must not be negative, got %s", c.MaxFuture))
	}
	if c.Batch < 1 {
		errs = append(errs, fmt.Errorf("FENCE_BATCH must be at least 1, got %d", c.Batch))
	}
	return errors.Join(errs...)
}

// EventJSON is an event as the events topic carries it and the CLI prints
// it, one JSON object per event.
type EventJSON struct {
	Device     string    `json:"device"`
	Type       string    `json:"type"`
	Seq        int64     `json:"seq"`
	Time       time.Time `json:"time"`
	ID         int64     `json:"id"`
	Key        string    `json:"key"`
	Collection string    `json:"collection"`
	Lat        float64   `json:"lat"`
	Lng        float64   `json:"lng"`
}

// NewEventJSON returns e's JSON form.
func NewEventJSON(e geo.Event) EventJSON {
	return EventJSON{Device: e.Device, Type: e.Type.String(), Seq: e.Seq, Time: e.Time.UTC(), ID: e.Thing.ID,
		Key: e.Thing.Key, Collection: e.Collection, Lat: e.Point.Lat, Lng: e.Point.Lng}
}

// Event returns the event j encodes.
func (j EventJSON) Event() (geo.Event, error) {
	e := geo.Event{Device: j.Device, Collection: j.Collection, Seq: j.Seq, Thing: geo.FenceThing{ID: j.ID, Key: j.Key},
		Point: geo.Point{Lat: j.Lat, Lng: j.Lng}, Time: j.Time}
	switch j.Type {
	case "enter":
		e.Type = geo.Enter
	case "exit":
		e.Type = geo.Exit
	default:
		return e, fmt.Errorf("event type %q is neither enter nor exit", j.Type)
	}
	return e, nil
}

// PositionJSON is a position as the positions topic carries it.
type PositionJSON struct {
	Device     string    `json:"device"`
	Collection string    `json:"collection"`
	Lat        *float64  `json:"lat"`
	Lng        *float64  `json:"lng"`
	Time       time.Time `json:"time"`
}

// DecodePosition reads one positions record's value; the key, when set,
// must be the device. Returns an Invalid error for anything malformed.
func DecodePosition(key, value []byte) (geo.Fix, error) {
	f, hasLat, hasLng, ok := decodePositionFast(value)
	if !ok {
		var p PositionJSON
		if err := json.Unmarshal(value, &p); err != nil {
			return geo.Fix{}, geo.Errorf(geo.Invalid, "a position must be a JSON object with device, collection, lat, lng and time (RFC 3339): %v", err)
		}
		f = geo.Fix{Device: p.Device, Collection: p.Collection, Time: p.Time}
		hasLat, hasLng = p.Lat != nil, p.Lng != nil
		if hasLat && hasLng {
			f.Point = geo.Point{Lat: *p.Lat, Lng: *p.Lng}
		}
	}
	if !hasLat || !hasLng {
		return geo.Fix{}, geo.Errorf(geo.Invalid, "a position needs lat and lng")
	}
	if len(key) > 0 && string(key) != f.Device {
		return geo.Fix{}, geo.Errorf(geo.Invalid, "the record's key %q is not its device %q: positions are keyed by device", key, f.Device)
	}
	return f, nil
}

// EncodePosition is the value of f's record in the positions topic.
func EncodePosition(f geo.Fix) []byte {
	b, _ := json.Marshal(PositionJSON{Device: f.Device, Collection: f.Collection, Lat: &f.Point.Lat, Lng: &f.Point.Lng, Time: f.Time})
	return b
}

// CreateFenceTopics creates cfg's topics on brokers unless they exist: the
// positions and events topics with the broker's default partitions and
// replication, the checkpoint topic with one partition (the relay uses
// partition 0 only). Every instance does it at start; the first wins.
func CreateFenceTopics(ctx context.Context, brokers []string, cfg FenceConfig) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30_000
	for _, t := range []struct {
		name       string
		partitions int32
	}{{cfg.PositionsTopic, -1}, {cfg.EventsTopic, -1}, {cfg.CheckpointTopic, 1}} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = t.name, t.partitions, -1
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create the geofencing topics: %w", err)
	}
	var errs []error
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", t.Topic, err))
		}
	}
	return errors.Join(errs...)
}
