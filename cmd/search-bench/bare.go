package main

import (
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// bareServerEnv, set in its environment, makes search-bench a bare grpc-go
// server on LISTEN_ADDR: the standard health service, grpc-go's defaults,
// nothing of ours. Its CPU per health check is grpc-go's own floor on this
// machine at the rounds' concurrency, under any RPC the server answers.
const bareServerEnv = "SEARCH_BENCH_BARE_GRPC_SERVER"

// serveBare runs the bare server until the process is killed.
func serveBare() error {
	l, err := net.Listen("tcp", os.Getenv("LISTEN_ADDR"))
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer()) // "" is SERVING
	return fmt.Errorf("bare gRPC server: %w", s.Serve(l))
}
