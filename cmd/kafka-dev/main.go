// Command kafka-dev is a development Kafka-protocol broker: franz-go's kfake,
// in memory, on loopback. It stands in for Apache Kafka in tests and the
// local stack on machines where no Kafka release can be installed. It is not
// Kafka: nothing is persisted, and it is not meant for production. Clients
// (kafka-go here) talk to it over TCP exactly as to a real cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kafka-dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kafka-dev", flag.ContinueOnError)
	port := fs.Int("port", 9092, "TCP port on 127.0.0.1")
	partitions := fs.Int("partitions", 3, "partitions of auto-created topics")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := kfake.NewCluster(
		kfake.Ports(*port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions),
		// kfake grows a segment's one slice by copying: 1 MiB segments
		// rather than Kafka's 100 MiB spare it large copies and memory.
		kfake.BrokerConfigs(map[string]string{"log.segment.bytes": "1048576"}),
	)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("kafka-dev: development Kafka-protocol broker (kfake, in memory) on %v\n", c.ListenAddrs())
	<-ctx.Done()
	return nil
}
