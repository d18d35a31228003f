package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

// Positions consumes the positions topic as one member of the instances'
// consumer group and applies each poll's records with the Tracker, in one
// transaction with the offsets they move (docs/GEOFENCE.md). Offsets live
// in the FenceStore, never in Kafka: on every assignment the consumer seeks
// to them.
type Positions struct {
	cfg     FenceConfig
	brokers []string
	tracker *geo.Tracker
	store   geo.FenceStore
	logger  *slog.Logger
	metrics metrics.Metrics

	mu sync.Mutex
	// next is the stored next offset of each assigned partition, -1 when
	// the store has none; what a batch's Offset.From must be.
	next map[int32]int64
	// applying is closed when the batch being applied (in the background,
	// while the next one is located) is done; nil when none is.
	applying chan struct{}

	consumed, rejected, stale, events atomic.Int64
	lag                               atomic.Int64 // at the last poll
	// beforeApply, when set (tests), runs before each batch is applied; an
	// error stops the consumer there, as a crash would.
	beforeApply func(n int) error
}

// NewPositions returns a consumer of cfg.PositionsTopic on brokers.
func NewPositions(cfg FenceConfig, brokers []string, tracker *geo.Tracker, store geo.FenceStore, logger *slog.Logger, m metrics.Metrics) *Positions {
	return &Positions{cfg: cfg, brokers: brokers, tracker: tracker, store: store, logger: logger, metrics: m}
}

// PositionCounts are what a Positions consumer did since start.
type PositionCounts struct {
	Consumed, Rejected, Stale, Events int64
	// Lag is the records behind the high watermarks of the partitions of
	// the last poll.
	Lag int64
}

// Counts returns the consumer's counts.
func (p *Positions) Counts() PositionCounts {
	return PositionCounts{Consumed: p.consumed.Load(), Rejected: p.rejected.Load(), Stale: p.stale.Load(), Events: p.events.Load(), Lag: p.lag.Load()}
}

// Run consumes until ctx ends, starting again (a new group member) after a
// failure: the database or Kafka away, or a partition moved on by another
// member.
func (p *Positions) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := p.RunOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		p.logger.Warn("geofence positions consumer stopped; starting again", "error", err.Error(), "backoff", backoff.String())
		p.metrics.Count("fence.consumer_restarts", 1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// RunOnce consumes until ctx ends (nil) or the first failure.
func (p *Positions) RunOnce(ctx context.Context) error {
	p.mu.Lock()
	p.next = map[int32]int64{}
	p.mu.Unlock()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(p.brokers...),
		kgo.ConsumerGroup(p.cfg.Group),
		// An instance killed without leaving the group holds its
		// partitions until its session times out: 10 s rather than
		// Kafka's 45 s, so its devices move on soon. A rebalance gives
		// members 20 s to rejoin (not 60), well inside a JoinGroup's own
		// request timeout (the rebalance timeout plus 10 s), so a
		// member never gives up on a join just as the group completes
		// it and comes back as a new member, starting it over.
		kgo.SessionTimeout(10*time.Second),
		kgo.RebalanceTimeout(20*time.Second),
		kgo.ConsumeTopics(p.cfg.PositionsTopic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(p.adjust),
		kgo.OnPartitionsRevoked(p.forget),
		kgo.OnPartitionsLost(p.forget),
		kgo.AllowAutoTopicCreation(),
	)
	if err != nil {
		return err
	}
	defer cl.CloseAllowingRebalance()
	// One batch is applied (its transaction) while the next is polled,
	// decoded and located: the batches of a partition still commit in
	// order, each after the one before it, from the offset it left.
	var inFlight <-chan error
	defer func() {
		if inFlight != nil {
			<-inFlight
		}
	}()
	for {
		fetches := cl.PollRecords(ctx, p.cfg.Batch)
		if ctx.Err() != nil {
			return nil
		}
		var fetchErr error
		fetches.EachError(func(topic string, partition int32, err error) {
			fetchErr = errors.Join(fetchErr, fmt.Errorf("fetch %s/%d: %w", topic, partition, err))
		})
		if fetchErr != nil {
			return fetchErr
		}
		b, err := p.prepare(ctx, fetches)
		if err != nil {
			return err
		}
		if inFlight != nil {
			err := <-inFlight
			inFlight = nil
			if err != nil {
				return err
			}
		}
		if b != nil {
			// The lag is reported once the batch is stored.
			if inFlight, err = p.start(ctx, b); err != nil {
				return err
			}
		} else {
			p.reportLag(highWatermarks(fetches))
		}
		cl.AllowRebalance()
	}
}

// adjust seeks every assigned partition to its offset in the store.
func (p *Positions) adjust(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	stored, err := p.store.Offsets(ctx, p.cfg.Group, p.cfg.PositionsTopic)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for topic, parts := range assigned {
		for part := range parts {
			if off, ok := stored[part]; ok && topic == p.cfg.PositionsTopic {
				parts[part] = kgo.NewOffset().At(off).WithEpoch(-1)
				p.next[part] = off
			} else {
				parts[part] = kgo.NewOffset().AtStart()
				p.next[part] = -1
			}
		}
	}
	return assigned, nil
}

// forget drops the partitions taken away, once the batch being applied
// is done: when a rebalance goes on, none of this member's batches is
// still to commit.
func (p *Positions) forget(_ context.Context, _ *kgo.Client, gone map[string][]int32) {
	p.mu.Lock()
	applying := p.applying
	p.mu.Unlock()
	if applying != nil {
		<-applying
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, parts := range gone {
		for _, part := range parts {
			delete(p.next, part)
		}
	}
}

// batch is one poll's records, decoded and located.
type batch struct {
	fixes   []geo.Fix
	bad     []error // per fix: the record did not decode
	located *geo.Located
	last    map[int32]int64 // the last offset of each partition
	hwm     map[int32]int64 // the poll's high watermarks
}

// prepare decodes one poll's records and locates their positions; nil
// when the poll has none.
func (p *Positions) prepare(ctx context.Context, fetches kgo.Fetches) (*batch, error) {
	n := fetches.NumRecords()
	b := &batch{fixes: make([]geo.Fix, 0, n), bad: make([]error, 0, n), last: map[int32]int64{}, hwm: highWatermarks(fetches)}
	fetches.EachRecord(func(rec *kgo.Record) {
		f, err := DecodePosition(rec.Key, rec.Value)
		b.fixes, b.bad = append(b.fixes, f), append(b.bad, err)
		b.last[rec.Partition] = rec.Offset
	})
	if len(b.fixes) == 0 {
		return nil, nil
	}
	// Undecodable records are kept out of the tracker but their offsets
	// move on with the batch: they are counted and logged, never retried.
	good := make([]geo.Fix, 0, len(b.fixes))
	for i, f := range b.fixes {
		if b.bad[i] == nil {
			good = append(good, f)
		}
	}
	start := time.Now()
	var err error
	if b.located, err = p.tracker.Locate(ctx, good); err != nil {
		return nil, fmt.Errorf("locate %d positions: %w", len(b.fixes), err)
	}
	p.metrics.Timing("fence.batch_locate", time.Since(start))
	return b, nil
}

// start applies b, with the offsets it moves, in the background: the
// channel gets the outcome. The offsets start where the batch before it
// left them, so start only once that one is done.
func (p *Positions) start(ctx context.Context, b *batch) (<-chan error, error) {
	p.mu.Lock()
	offsets := make([]geo.Offset, 0, len(b.last))
	for part, off := range b.last {
		from, ok := p.next[part]
		if !ok {
			p.mu.Unlock()
			return nil, fmt.Errorf("records of %s/%d, which is not assigned", p.cfg.PositionsTopic, part)
		}
		offsets = append(offsets, geo.Offset{Group: p.cfg.Group, Topic: p.cfg.PositionsTopic, Partition: part, From: from, Next: off + 1})
	}
	p.mu.Unlock()
	if p.beforeApply != nil {
		if err := p.beforeApply(len(b.fixes)); err != nil {
			return nil, err
		}
	}
	applying := make(chan struct{})
	p.mu.Lock()
	p.applying = applying
	p.mu.Unlock()
	out := make(chan error, 1)
	go func() {
		defer close(applying)
		start := time.Now()
		results, err := p.tracker.Apply(ctx, b.located, offsets)
		if err != nil {
			out <- fmt.Errorf("apply %d positions: %w", len(b.fixes), err)
			return
		}
		p.mu.Lock()
		for _, o := range offsets {
			p.next[o.Partition] = o.Next
		}
		p.mu.Unlock()
		p.metrics.Timing("fence.batch_apply", time.Since(start))
		p.count(b.fixes, b.bad, results)
		p.reportLag(b.hwm)
		out <- nil
	}()
	return out, nil
}

// count adds a batch to the counters and logs its rejected positions.
func (p *Positions) count(fixes []geo.Fix, bad []error, results []geo.TrackResult) {
	var rejected, stale, events int64
	reject := func(f geo.Fix, err error) {
		rejected++
		p.logger.Warn("geofence position rejected", "device", f.Device, "collection", f.Collection, "error", geo.ErrorMessage(err))
	}
	k := 0
	for i, f := range fixes {
		if bad[i] != nil {
			reject(f, bad[i])
			continue
		}
		r := results[k]
		k++
		events += int64(len(r.Events))
		switch {
		case r.Err != nil:
			reject(f, r.Err)
		case r.Stale:
			stale++
		}
	}
	p.consumed.Add(int64(len(fixes)))
	p.rejected.Add(rejected)
	p.stale.Add(stale)
	p.events.Add(events)
	p.metrics.Count("fence.positions_consumed", int64(len(fixes)))
	p.metrics.Count("fence.positions_rejected", rejected)
	p.metrics.Count("fence.positions_stale", stale)
	p.metrics.Count("fence.events", events)
}

// highWatermarks returns the high watermark of each partition of a poll.
func highWatermarks(fetches kgo.Fetches) map[int32]int64 {
	hwm := map[int32]int64{}
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) { hwm[fp.Partition] = fp.HighWatermark })
	return hwm
}

// reportLag sends fence.consumer_lag: the records behind the high
// watermarks of a poll's partitions (hwm), from the stored offsets.
func (p *Positions) reportLag(hwm map[int32]int64) {
	var lag int64
	p.mu.Lock()
	for part, high := range hwm {
		if next, ok := p.next[part]; ok && next >= 0 {
			lag += max(0, high-next)
		}
	}
	p.mu.Unlock()
	p.lag.Store(lag)
	p.metrics.Gauge("fence.consumer_lag", lag)
}
