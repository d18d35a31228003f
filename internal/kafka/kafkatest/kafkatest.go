// Package kafkatest runs the development Kafka-protocol broker (franz-go's
// kfake, in memory) on a loopback TCP port for tests, and can stop it and
// start it again on the same port to inject an outage. Clients reach it over
// TCP exactly as they would reach Apache Kafka.
package kafkatest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// segmentBytes is the size of kfake's in-memory log segments: 1 MiB
// rather than Kafka's 100 MiB. kfake keeps a segment in one slice that it
// grows by copying, so large segments cost the broker (in the tests'
// process) most of its CPU in copies and fresh pages: 10% of the
// geofencing benchmark's process before, 1.5% after.
const segmentBytes = "1048576"

// Broker is a running (or stopped) development broker.
type Broker struct {
	mu      sync.Mutex
	port    int
	cluster *kfake.Cluster
}

// Start runs a broker on a free port, stopped when t ends.
func Start(t testing.TB) *Broker {
	t.Helper()
	b := &Broker{}
	if err := b.start(0); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(b.Stop)
	return b
}

func (b *Broker) start(port int) error {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		b.cluster, err = kfake.NewCluster(kfake.Ports(port), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3),
			kfake.BrokerConfigs(map[string]string{"log.segment.bytes": segmentBytes}))
		if err == nil {
			_, err = fmt.Sscanf(b.cluster.ListenAddrs()[0], "127.0.0.1:%d", &b.port)
			return err
		}
		time.Sleep(100 * time.Millisecond) // the old listener may linger a moment
	}
	return err
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// Stop shuts the broker down; its records are gone.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cluster != nil {
		b.cluster.Close()
		b.cluster = nil
	}
}

// Restart starts a stopped broker again on the same port, empty.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cluster != nil {
		t.Fatal("kafkatest: broker is running")
	}
	if err := b.start(b.port); err != nil {
		t.Fatalf("kafkatest: restart on port %d: %v", b.port, err)
	}
}
