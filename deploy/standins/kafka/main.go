// Command kafka is the broker of the apache/kafka stand-in image. IT IS NOT
// KAFKA: it is franz-go's kfake, the Kafka-protocol broker the project's
// tests and cmd/kafka-dev use, in memory (nothing is persisted:
// KAFKA_LOG_DIRS is ignored), one broker. It honours what
// docker-compose.yml sets: the PLAINTEXT listener's port
// (KAFKA_LISTENERS), the address it advertises to clients
// (KAFKA_ADVERTISED_LISTENERS) and KAFKA_NUM_PARTITIONS for topics created
// on first use.
//
//	kafka                                    serve, configured by the environment
//	kafka probe --bootstrap-server HOST:PORT  exit 0 when a broker answers
//	                                          ApiVersions (the health check)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		err = probe(ctx, os.Args[2:])
	} else {
		err = serve(ctx, os.Getenv)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka (stand-in, not Kafka):", err)
		os.Exit(1)
	}
}

// plaintext returns the address of the PLAINTEXT listener in a Kafka
// listener list ("PLAINTEXT://:9092,CONTROLLER://:9093").
func plaintext(list string) (string, error) {
	for _, l := range strings.Split(list, ",") {
		if addr, ok := strings.CutPrefix(strings.TrimSpace(l), "PLAINTEXT://"); ok {
			return addr, nil
		}
	}
	return "", fmt.Errorf("no PLAINTEXT listener in %q", list)
}

func serve(ctx context.Context, getenv func(string) string) error {
	listen, err := plaintext(cmp(getenv("KAFKA_LISTENERS"), "PLAINTEXT://:9092"))
	if err != nil {
		return fmt.Errorf("KAFKA_LISTENERS: %w", err)
	}
	advertised, err := plaintext(cmp(getenv("KAFKA_ADVERTISED_LISTENERS"), "PLAINTEXT://localhost:9092"))
	if err != nil {
		return fmt.Errorf("KAFKA_ADVERTISED_LISTENERS: %w", err)
	}
	partitions := 1
	if v := getenv("KAFKA_NUM_PARTITIONS"); v != "" {
		if partitions, err = strconv.Atoi(v); err != nil || partitions < 1 {
			return fmt.Errorf("KAFKA_NUM_PARTITIONS %q: want a positive number", v)
		}
	}
	adv, err := net.ResolveTCPAddr("tcp", "0.0.0.0"+advertisedPort(advertised))
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(advertised)
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		// kfake listens on 127.0.0.1 and advertises its listener's
		// address; listen where KAFKA_LISTENERS says and advertise
		// KAFKA_ADVERTISED_LISTENERS instead.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, listen)
			if err != nil {
				return nil, err
			}
			return advertisedListener{ln, hostAddr{host, adv.Port}}, nil
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
	)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("kafka (stand-in, NOT Kafka: franz-go kfake, in memory) listening on %s, advertising %s\n", listen, advertised)
	<-ctx.Done()
	return nil
}

func advertisedPort(hostport string) string {
	_, port, _ := net.SplitHostPort(hostport)
	return ":" + port
}

func cmp(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}

// advertisedListener reports the advertised address as its own, which is
// what kfake puts into metadata responses.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

type hostAddr struct {
	host string
	port int
}

func (a hostAddr) Network() string { return "tcp" }
func (a hostAddr) String() string  { return net.JoinHostPort(a.host, strconv.Itoa(a.port)) }

// probe sends ApiVersions to the bootstrap server, as
// kafka-broker-api-versions.sh does for the image's health check.
func probe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	bootstrap := fs.String("bootstrap-server", "localhost:9092", "broker address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(*bootstrap))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("ApiVersions to %s: %w", *bootstrap, err)
	}
	if len(resp.ApiKeys) == 0 {
		return errors.New("ApiVersions: no API keys")
	}
	fmt.Printf("%s: %d API keys\n", *bootstrap, len(resp.ApiKeys))
	return nil
}
