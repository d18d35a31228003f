package main

import (
	"context"
	"os"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// servers are what the bench measures: its own PostgreSQL and servers
// (the main one, and the baseline, bare and logging ones when asked), or a
// server given by --server-addr.
type servers struct {
	main, logging, baseline, bare endpoint
	dbURL                         string
	db                            *database // nil for a given database
	dir                           string    // the servers' logs
	closers                       []func()  // run last first by close
}

// close stops what startServers started, last first.
func (sv *servers) close() {
	for i := len(sv.closers) - 1; i >= 0; i-- {
		sv.closers[i]()
	}
}

// startServers starts the database and servers, or connects to
// --server-addr. Whatever it returns, its close stops what was started.
func (b *bench) startServers(ctx context.Context) (*servers, error) {
	sv := &servers{dbURL: b.o.databaseURL}
	if b.o.serverAddr != "" {
		conn, err := grpc.NewClient(b.o.serverAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return sv, err
		}
		sv.closers = append(sv.closers, func() { conn.Close() })
		sv.main = endpoint{conn: conn}
		return sv, nil
	}
	var err error
	if sv.dir, err = os.MkdirTemp("", "search-bench-"); err != nil {
		return sv, err
	}
	sv.closers = append(sv.closers, func() {
		if b.o.keepLogs {
			b.progress("server logs kept in %s", sv.dir)
		} else {
			os.RemoveAll(sv.dir)
		}
	})
	b.progress("starting PostgreSQL with PostGIS")
	if sv.db, err = startDatabase(ctx); err != nil {
		return sv, err
	}
	sv.closers = append(sv.closers, sv.db.close)
	if sv.dbURL, err = sv.db.create(ctx, "bench"); err != nil {
		return sv, err
	}
	env := withEnv(map[string]string{"DATABASE_URL": sv.dbURL, "LOCATE_BATCH_SIZE": strconv.Itoa(b.batch)}, b.o.serverEnv)
	if b.o.pprofAddr != "" {
		env["PPROF_ADDR"] = b.o.pprofAddr
	}
	b.progress("starting search-server (%s)", b.o.serverBin)
	if sv.main, err = sv.start(ctx, b.o.serverBin, "plain", env); err != nil {
		return sv, err
	}
	return sv, b.startOthers(ctx, sv)
}

// startOthers starts the baseline server (--baseline-bin), the bare
// grpc-go server and, with --logging-rounds, the server that ships its
// logs to Kafka and its metrics to StatsD.
func (b *bench) startOthers(ctx context.Context, sv *servers) error {
	var err error
	if b.o.baselineBin != "" {
		b.progress("starting the baseline search-server (%s)", b.o.baselineBin)
		env := map[string]string{"DATABASE_URL": sv.dbURL}
		if b.o.baselineSock {
			env["DATABASE_URL"] = sv.db.cluster.SocketURL("bench")
		}
		for _, kv := range b.o.baselineEnv {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		if sv.baseline, err = sv.start(ctx, b.o.baselineBin, "baseline", env); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b.progress("starting a bare grpc-go server (health service only)")
	if sv.bare, err = sv.start(ctx, self, "bare", map[string]string{bareServerEnv: "1"}); err != nil {
		return err
	}
	if !b.o.logging {
		return nil
	}
	obs, err := startObservability()
	if err != nil {
		return err
	}
	sv.closers = append(sv.closers, obs.close)
	env := obs.env()
	env["DATABASE_URL"] = sv.dbURL
	b.progress("starting search-server with Kafka log shipping and StatsD on")
	sv.logging, err = sv.start(ctx, b.o.serverBin, "logging", env)
	return err
}

// start starts a server process named name, to be stopped by close.
func (sv *servers) start(ctx context.Context, bin, name string, env map[string]string) (endpoint, error) {
	p, err := startServer(ctx, bin, sv.dir, name, env)
	if err != nil {
		return endpoint{}, err
	}
	sv.closers = append(sv.closers, p.stop)
	return endpoint{conn: p.conn, proc: p}, nil
}
