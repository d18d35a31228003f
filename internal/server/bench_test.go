package server_test

import (
	"context"
	"testing"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/kafka/kafkatest"
	"github.com/geosearch/search/internal/server/servertest"
)

// BenchmarkSearchLogging measures point searches through the full gRPC path
// with every request logged, in three set-ups: no Kafka, Kafka shipping to a
// live broker, and Kafka configured with the broker stopped (records are
// dropped). The servers are set up once, before the timed runs; compare the
// three within one run (make bench), never across runs.
func BenchmarkSearchLogging(b *testing.B) {
	modes := []string{"kafka=off", "kafka=up", "kafka=down"}
	servers := map[string]*servertest.Server{}
	for _, mode := range modes {
		env := map[string]string{"LOG_LEVEL": "info"}
		if mode != "kafka=off" {
			broker := kafkatest.Start(b)
			env["KAFKA_BROKERS"] = broker.Addr()
			if mode == "kafka=down" {
				broker.Stop()
			}
		}
		servers[mode] = servertest.Start(b, env, true)
		servertest.ImportFixture(b, servers[mode])
	}
	paris := &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 48.85, Lng: 2.35}}
	for _, mode := range modes {
		ts := servers[mode]
		b.Run(mode, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := ts.Client.Search(context.Background(), paris)
					if err != nil || len(resp.GetThings()) != 1 {
						b.Fatalf("search: %v", err)
					}
				}
			})
		})
	}
}
