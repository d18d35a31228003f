package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

// Relay publishes the outbox's events to the events topic, each once for a
// read_committed reader (docs/GEOFENCE.md): one relay at a time (the
// outbox's lock), a stable transactional id that fences the previous
// holder, and the relay's position committed in the same Kafka transaction
// as the events it covers.
type Relay struct {
	cfg     FenceConfig
	brokers []string
	outbox  geo.Outbox
	logger  *slog.Logger
	metrics metrics.Metrics
	// Poll is how long the relay waits when the outbox is empty, unless
	// its outbox says sooner that this process stored events.
	Poll time.Duration
	// published counts the events published since start.
	published atomic.Int64
	// beforeCommit, when set (tests), runs between producing a batch and
	// committing it; an error stops the relay there, its transaction left
	// open, as a crash would.
	beforeCommit func() error
}

// NewRelay returns a relay of outbox to cfg's topics on brokers.
func NewRelay(cfg FenceConfig, brokers []string, outbox geo.Outbox, logger *slog.Logger, m metrics.Metrics) *Relay {
	return &Relay{cfg: cfg, brokers: brokers, outbox: outbox, logger: logger, metrics: m, Poll: 100 * time.Millisecond}
}

// Published is the number of events this relay published.
func (r *Relay) Published() int64 { return r.published.Load() }

// Run relays until ctx ends, taking the lead when it is free and starting
// again after any failure (Kafka or the database away), with backoff.
func (r *Relay) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := r.outbox.Lead(ctx, r.lead)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.logger.Warn("geofence relay stopped; starting again", "error", err.Error(), "backoff", backoff.String())
			r.metrics.Count("fence.relay_restarts", 1)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// RunOnce leads once: it returns at the first failure, or when ctx ends.
func (r *Relay) RunOnce(ctx context.Context) error { return r.outbox.Lead(ctx, r.lead) }

func (r *Relay) client() (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(r.brokers...),
		kgo.TransactionalID(r.cfg.RelayTxnID),
		kgo.TransactionTimeout(time.Minute),
		kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(checkpointPartitioner{checkpoint: r.cfg.CheckpointTopic, byKey: kgo.StickyKeyPartitioner(nil)}),
		kgo.RequestRetries(3),
	)
}

// writtenNotifier is an outbox that tells the relay in its process when
// events were stored (postgis.FenceStore): the relay reads them then
// rather than at its next poll.
type writtenNotifier interface{ Written() <-chan struct{} }

// lead relays while this process holds the outbox's lock.
func (r *Relay) lead(ctx context.Context) error {
	cl, err := r.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	// Initializing the transactional id aborts what a previous holder left
	// open and fences it.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return fmt.Errorf("init the relay's transactional id: %w", err)
	}
	mark, err := lastCheckpoint(ctx, r.brokers, r.cfg.CheckpointTopic)
	if err != nil {
		return err
	}
	r.logger.Info("geofence relay leading", "after_xid", mark.XID, "after_id", mark.ID)
	trimmed := geo.OutboxMark{}
	var written <-chan struct{} // nil, never ready, without a notifier
	if n, ok := r.outbox.(writtenNotifier); ok {
		written = n.Written()
	}
	for {
		if trimmed != mark {
			if err := r.outbox.Trim(ctx, mark); err != nil {
				return err
			}
			trimmed = mark
		}
		start := time.Now()
		events, err := r.outbox.Pending(ctx, mark, r.cfg.Batch)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(r.Poll):
			case <-written:
			}
			continue
		}
		read := time.Now()
		if err := r.publish(ctx, cl, events); err != nil {
			return err
		}
		r.metrics.Timing("fence.relay_read", read.Sub(start))
		r.metrics.Timing("fence.relay_publish", time.Since(read))
		r.logger.Debug("geofence relay committed", "events", len(events),
			"first_xid", events[0].Mark.XID, "first_id", events[0].Mark.ID, "last_xid", events[len(events)-1].Mark.XID, "last_id", events[len(events)-1].Mark.ID)
		mark = events[len(events)-1].Mark
		r.published.Add(int64(len(events)))
		r.metrics.Count("fence.events_published", int64(len(events)))
	}
}

// checkpointJSON is the relay's position as the checkpoint topic holds it.
type checkpointJSON struct {
	XID string `json:"xid"`
	ID  int64  `json:"id"`
}

// publish sends events and the checkpoint after them in one transaction.
func (r *Relay) publish(ctx context.Context, cl *kgo.Client, events []geo.OutboxEvent) error {
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	var failed atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	// The records, their values and their keys share three buffers: a few
	// allocations per batch instead of three per event.
	recs := make([]kgo.Record, len(events))
	valueBytes, keyBytes := 0, 0
	for _, e := range events {
		valueBytes += eventJSONBytes + len(e.Device) + len(e.Thing.Key) + len(e.Collection)
		keyBytes += len(e.Device)
	}
	values, keys := make([]byte, 0, valueBytes), make([]byte, 0, keyBytes)
	// One timestamp for the batch's records (the time they are produced):
	// the client would read the clock once per record.
	now := time.Now()
	for i, e := range events {
		start := len(values)
		var err error
		if values, err = AppendEvent(values, e.Event); err != nil {
			return err
		}
		keys = append(keys, e.Device...)
		value, key := values[start:len(values):len(values)], keys[len(keys)-len(e.Device):len(keys):len(keys)]
		recs[i] = kgo.Record{Topic: r.cfg.EventsTopic, Key: key, Value: value, Timestamp: now}
		cl.Produce(ctx, &recs[i], promise)
	}
	last := events[len(events)-1].Mark
	cp, _ := json.Marshal(checkpointJSON{XID: strconv.FormatUint(last.XID, 10), ID: last.ID})
	cl.Produce(ctx, &kgo.Record{Topic: r.cfg.CheckpointTopic, Key: []byte("relay"), Value: cp}, promise)
	if err := cl.Flush(ctx); err != nil {
		failed.CompareAndSwap(nil, &err)
	}
	if r.beforeCommit != nil {
		if err := r.beforeCommit(); err != nil {
			return err // as a kill -9 would: the transaction stays open
		}
	}
	if p := failed.Load(); p != nil {
		// Aborted here or, if this process is gone, by the next relay's
		// initialization: a read_committed reader never sees the batch.
		abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = cl.AbortBufferedRecords(abortCtx)
		_ = cl.EndTransaction(abortCtx, kgo.TryAbort)
		return fmt.Errorf("publish events: %w", *p)
	}
	return cl.EndTransaction(ctx, kgo.TryCommit)
}

// checkpointPartitioner puts checkpoints on partition 0 and events by key.
type checkpointPartitioner struct {
	checkpoint string
	byKey      kgo.Partitioner
}

func (p checkpointPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == p.checkpoint {
		return zeroPartitioner{}
	}
	return p.byKey.ForTopic(topic)
}

type zeroPartitioner struct{}

func (zeroPartitioner) RequiresConsistency(*kgo.Record) bool { return true }
func (zeroPartitioner) Partition(*kgo.Record, int) int       { return 0 }

// lastCheckpoint reads the last committed checkpoint of partition 0 of
// topic: the tail, read_committed with the control records kept, so that
// the read knows when it reached the end; further back while the tail
// holds no committed checkpoint (aborted batches). The zero mark when the
// topic is empty or missing.
func lastCheckpoint(ctx context.Context, brokers []string, topic string) (geo.OutboxMark, error) {
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return geo.OutboxMark{}, err
	}
	defer admin.Close()
	start, end, err := partitionBounds(ctx, admin, topic, 0)
	if err != nil || end <= start {
		return geo.OutboxMark{}, err
	}
	for back := int64(16); ; back *= 4 {
		from := max(start, end-back)
		mark, found, err := readCheckpoints(ctx, brokers, topic, from, end)
		if err != nil || found || from == start {
			return mark, err
		}
	}
}

// readCheckpoints reads partition 0 of topic from offset from up to end
// and returns the last committed checkpoint in it.
func readCheckpoints(ctx context.Context, brokers []string, topic string, from, end int64) (mark geo.OutboxMark, found bool, err error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return mark, false, err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		fetches := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return mark, false, fmt.Errorf("read the relay's checkpoints %d..%d: %w", from, end, err)
		}
		if err := fetches.Err(); err != nil {
			return mark, false, fmt.Errorf("read the relay's checkpoints: %w", err)
		}
		reached := false
		fetches.EachRecord(func(rec *kgo.Record) {
			if rec.Offset >= end-1 {
				reached = true
			}
			if rec.Attrs.IsControl() || rec.Offset >= end {
				return
			}
			var cp checkpointJSON
			if json.Unmarshal(rec.Value, &cp) != nil {
				return
			}
			if x, err := strconv.ParseUint(cp.XID, 10, 64); err == nil {
				mark, found = geo.OutboxMark{XID: x, ID: cp.ID}, true
			}
		})
		if reached {
			return mark, found, nil
		}
	}
}

// partitionBounds returns the log start offset and the last stable offset
// of one partition; zeros when the topic does not exist.
func partitionBounds(ctx context.Context, cl *kgo.Client, topic string, partition int32) (start, end int64, err error) {
	read := func(timestamp int64) (int64, error) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		req.IsolationLevel = 1 // read_committed: the last stable offset
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = partition
		rp.Timestamp = timestamp
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return 0, err
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return 0, fmt.Errorf("list offsets of %s: an answer without the partition", topic)
		}
		p := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			return 0, err
		}
		return p.Offset, nil
	}
	end, err = read(-1)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	start, err = read(-2)
	if err != nil {
		return 0, 0, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	return start, end, nil
}
