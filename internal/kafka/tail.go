package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// TailOptions select what Tail reads.
type TailOptions struct {
	Brokers []string
	Topic   string
	// Since starts at the first record at or after this time; zero starts
	// at the beginning of the topic.
	Since time.Time
	// Follow keeps reading new records until ctx ends; otherwise Tail stops
	// at the end of the topic as it was when Tail started.
	Follow bool
}

// Record is one shipped log record.
type Record struct {
	Key       string // the instance ID
	Value     []byte // the JSON log record
	Time      time.Time
	Partition int
	Offset    int64
}

// Tail reads every partition of the topic and calls fn with each record,
// in order within a partition (so per instance). fn is never called
// concurrently.
func Tail(ctx context.Context, opts TailOptions, fn func(Record) error) error {
	if len(opts.Brokers) == 0 {
		return errors.New("no Kafka brokers given")
	}
	partitions, err := readPartitions(ctx, opts.Brokers[0], opts.Topic)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	records := make(chan Record)
	errs := make(chan error, len(partitions))
	var wg sync.WaitGroup
	for _, p := range partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tailPartition(ctx, opts, p, records); err != nil && ctx.Err() == nil {
				errs <- err
			}
		}()
	}
	go func() { wg.Wait(); close(records) }()
	for {
		select {
		case r, ok := <-records:
			if !ok {
				select {
				case err := <-errs:
					return err
				default:
					return nil
				}
			}
			if err := fn(r); err != nil {
				return err
			}
		case err := <-errs:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

func readPartitions(ctx context.Context, broker, topic string) ([]kafkago.Partition, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := kafkago.DialContext(dctx, "tcp", broker)
	if err != nil {
		return nil, fmt.Errorf("connect to Kafka at %s: %w", broker, err)
	}
	defer conn.Close()
	ps, err := conn.ReadPartitions(topic)
	if err != nil || len(ps) == 0 {
		return nil, fmt.Errorf("topic %q has no partitions at %s (no server has shipped logs yet?): %v", topic, broker, err)
	}
	return ps, nil
}

func tailPartition(ctx context.Context, opts TailOptions, p kafkago.Partition, out chan<- Record) error {
	end := int64(-1)
	if !opts.Follow {
		first, last, err := offsets(ctx, opts.Brokers[0], opts.Topic, p.ID)
		if err != nil {
			return err
		}
		if last <= first {
			return nil // empty partition
		}
		end = last
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:   opts.Brokers,
		Topic:     opts.Topic,
		Partition: p.ID,
		MinBytes:  1,
		MaxBytes:  10 << 20,
		MaxWait:   250 * time.Millisecond,
	})
	defer r.Close()
	if opts.Since.IsZero() {
		if err := r.SetOffset(kafkago.FirstOffset); err != nil {
			return err
		}
	} else if err := r.SetOffsetAt(ctx, opts.Since); err != nil {
		return fmt.Errorf("seek partition %d to %s: %w", p.ID, opts.Since.Format(time.RFC3339), err)
	}
	for {
		if end >= 0 && r.Offset() >= end {
			return nil
		}
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read partition %d: %w", p.ID, err)
		}
		select {
		case out <- Record{Key: string(m.Key), Value: m.Value, Time: m.Time, Partition: m.Partition, Offset: m.Offset}:
		case <-ctx.Done():
			return nil
		}
		if end >= 0 && m.Offset+1 >= end {
			return nil
		}
	}
}

// offsets returns the first and the next-to-be-written offsets of a
// partition.
func offsets(ctx context.Context, broker, topic string, partition int) (int64, int64, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := kafkago.DialLeader(dctx, "tcp", broker, topic, partition)
	if err != nil {
		return 0, 0, fmt.Errorf("connect to the leader of partition %d: %w", partition, err)
	}
	defer conn.Close()
	return conn.ReadOffsets()
}
