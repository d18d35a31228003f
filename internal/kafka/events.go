package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/geosearch/search/internal/geo"
)

// EventsOptions select what ReadEvents reads.
type EventsOptions struct {
	Brokers []string
	Topic   string
	// Follow keeps reading new events until ctx ends; otherwise ReadEvents
	// stops at the end of the topic as it was when it started.
	Follow bool
}

// ReadEvents reads the events topic from its start as a read_committed
// consumer (never an event of an aborted relay batch) and calls fn with
// each event, in order within a partition, so per device. fn is never
// called concurrently. A record that is not an event is an error.
func ReadEvents(ctx context.Context, opts EventsOptions, fn func(geo.Event) error) error {
	if len(opts.Brokers) == 0 {
		return errors.New("no Kafka brokers given")
	}
	ends := map[int32]int64{}
	if !opts.Follow {
		var err error
		if ends, err = endOffsets(ctx, opts.Brokers, opts.Topic); err != nil || len(ends) == 0 {
			return err
		}
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ConsumeTopics(opts.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // to know a partition's end was reached
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	done := func() bool {
		if opts.Follow {
			return false
		}
		for _, end := range ends {
			if end > 0 {
				return false
			}
		}
		return true
	}
	for !done() {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fetches.Err(); err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("read %s: %w", opts.Topic, err)
		}
		var fnErr error
		fetches.EachRecord(func(rec *kgo.Record) {
			if fnErr != nil {
				return
			}
			if end, ok := ends[rec.Partition]; ok && rec.Offset >= end-1 {
				ends[rec.Partition] = 0
			}
			if rec.Attrs.IsControl() {
				return
			}
			var j EventJSON
			if err := json.Unmarshal(rec.Value, &j); err != nil {
				fnErr = fmt.Errorf("%s/%d@%d is not an event: %w", rec.Topic, rec.Partition, rec.Offset, err)
				return
			}
			e, err := j.Event()
			if err != nil {
				fnErr = fmt.Errorf("%s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
				return
			}
			fnErr = fn(e)
		})
		if fnErr != nil {
			return fnErr
		}
	}
	return nil
}

// endOffsets returns the last stable offset of every non-empty partition
// of topic; none when it does not exist.
func endOffsets(ctx context.Context, brokers []string, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	resp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	if len(resp.Topics) != 1 {
		return out, nil
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return out, nil
		}
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, p := range resp.Topics[0].Partitions {
		start, end, err := partitionBounds(ctx, cl, topic, p.Partition)
		if err != nil {
			return nil, err
		}
		if end > start {
			out[p.Partition] = end
		}
	}
	return out, nil
}

// EventReader is the events topic as a geo.EventSource.
type EventReader struct {
	Brokers []string
	Topic   string
}

// ReadEvents implements geo.EventSource with ReadEvents.
func (r EventReader) ReadEvents(ctx context.Context, follow bool, fn func(geo.Event) error) error {
	return ReadEvents(ctx, EventsOptions{Brokers: r.Brokers, Topic: r.Topic, Follow: follow}, fn)
}
