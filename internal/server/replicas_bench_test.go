package server_test

import (
	"context"
	"testing"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/postgis/postgistest"
	"github.com/geosearch/search/internal/server/servertest"
)

// BenchmarkSearchOnStandby measures point searches through the whole gRPC
// path of a server reading from the primary and of one reading from its
// hot standby (writing to the primary), and on the standby with a
// consistency token it has replayed. Compare within one run (make bench).
func BenchmarkSearchOnStandby(b *testing.B) {
	dbs := postgistest.StartReplicatedT(b)
	primaryURL, standbyURL := dbs.NewDatabase(b)
	onPrimary := servertest.Start(b, map[string]string{"DATABASE_URL": primaryURL, "LOG_LEVEL": "info"}, true)
	onStandby := servertest.Start(b, map[string]string{"DATABASE_URL": standbyURL, "DATABASE_WRITE_URL": primaryURL, "LOG_LEVEL": "info"}, true)
	servertest.ImportFixture(b, onPrimary)
	stream, err := onStandby.Client.Import(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	resp, err := stream.CloseAndRecv() // an empty import: only its token
	if err != nil || resp.GetConsistencyToken() == "" {
		b.Fatalf("empty import: %v, %v", resp, err)
	}
	token := resp.GetConsistencyToken()
	for _, c := range []struct {
		name  string
		ts    *servertest.Server
		token string
	}{{"primary", onPrimary, ""}, {"standby", onStandby, ""}, {"standby with token", onStandby, token}} {
		paris := &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 48.85, Lng: 2.35}, ConsistencyToken: c.token}
		b.Run(c.name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.ts.Client.Search(context.Background(), paris)
					if err != nil || len(resp.GetThings()) != 1 {
						b.Fatalf("search: %v, %v", resp, err)
					}
				}
			})
		})
	}
}
