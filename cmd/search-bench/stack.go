package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/postgis/postgistest"
)

// database is a throwaway PostgreSQL+PostGIS server (postgistest's: initdb
// into a temporary directory, a free loopback port) or one given by URL.
type database struct {
	cluster *postgistest.Cluster // nil for a given database
}

// startDatabase starts a throwaway server.
func startDatabase(ctx context.Context) (*database, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := postgistest.Start(ctx)
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL with PostGIS: %w", err)
	}
	return &database{cluster: c}, nil
}

// create makes an empty database called name, migrates it as
// `search-server migrate` does, and returns its URL.
func (d *database) create(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, d.cluster.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	url := d.cluster.URL(name)
	if err := migrate(url); err != nil {
		return "", err
	}
	return url, nil
}

func migrate(url string) error {
	mg, err := postgis.NewMigrator(url)
	if err != nil {
		return err
	}
	defer mg.Close()
	if err := mg.Up(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

func (d *database) close() {
	if d.cluster != nil {
		_ = d.cluster.Close()
	}
}

// postmasterPID finds the PID of the server behind url: the parent of a
// backend. The database's CPU is then that process's and its children's.
func postmasterPID(ctx context.Context, url string) (int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0, err
	}
	st, err := readStat(backend)
	if err != nil {
		return 0, fmt.Errorf("the database is not on this machine: %w", err)
	}
	return st.ppid, nil
}

// serverProc is a search-server binary running as a process of its own, so
// that its CPU time and RSS are its own.
type serverProc struct {
	name    string
	addr    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	conn    *grpc.ClientConn
}

// startServer runs bin with the base environment (PATH, HOME, TMPDIR),
// MEMINDEX=on and env on a free loopback port, its output in dir/name.log, and waits until
// it reports SERVING.
func startServer(ctx context.Context, bin, dir, name string, env map[string]string) (*serverProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &serverProc{name: name, addr: "127.0.0.1:" + strconv.Itoa(port), logPath: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	p.cmd = exec.Command(bin)
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			p.cmd.Env = append(p.cmd.Env, k+"="+v)
		}
	}
	// The in-memory index is off by default (docs/INDEX.md says why); the
	// bench measures it on unless env says otherwise (--baseline-env
	// MEMINDEX=off measures the database path beside it).
	vars := map[string]string{"LISTEN_ADDR": p.addr, "CONSUL_REGISTER": "false", "INSTANCE_ID": "bench-" + name, "MEMINDEX": "on"}
	for k, v := range env {
		vars[k] = v
	}
	for k, v := range vars {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// The server dies with the benchmark, even if the benchmark is killed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	p.conn, err = grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		p.stop()
		return nil, err
	}
	if err := p.waitServing(ctx); err != nil {
		p.stop()
		return nil, fmt.Errorf("server %s: %w\n%s", name, err, p.logTail())
	}
	return p, nil
}

func (p *serverProc) waitServing(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(p.conn)
	for {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-p.exited:
			return errors.New("exited at start")
		case <-ctx.Done():
			return fmt.Errorf("not SERVING within 30 s (last: %v)", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *serverProc) pid() int { return p.cmd.Process.Pid }

func (p *serverProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(bytes.TrimSpace(b))
}

// stop sends SIGTERM (the server's orderly shutdown) and kills it if it has
// not exited within 20 seconds.
func (p *serverProc) stop() {
	if p.conn != nil {
		p.conn.Close()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// procStat is what the benchmark reads of a process in /proc.
type procStat struct {
	ppid int
	cpu  time.Duration // user + system
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{ppid: ppid, cpu: time.Duration(utime+stime) * clockTick}, nil
}

// procCPU is pid's CPU time: the sum of its threads' run times in
// /proc/PID/task/TID/schedstat, in nanoseconds, on a kernel that keeps
// them (else its user + system time, in clock ticks). Ticks are too coarse
// for a short round: a server that ran 9 ms in one read as 0. A thread
// that exits takes its time with it; the processes measured keep theirs
// (Go parks its threads, and each PostgreSQL process has one).
func procCPU(pid int) (time.Duration, error) {
	if !haveSchedstat() {
		st, err := readStat(pid)
		return st.cpu, err
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread ended meanwhile
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total, nil
}

// haveSchedstat says whether the kernel keeps /proc/PID/schedstat.
var haveSchedstat = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/schedstat")
	return err == nil
})

// readRSS returns the resident set size of pid in bytes.
func readRSS(pid int) (int64, error) {
	kb, err := readStatusKB(pid, "VmRSS:")
	return kb * 1024, err
}

// readStatusKB returns the field of /proc/PID/status (e.g. "VmHWM:") in kB.
func readStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// treeCPU is the CPU time of pid and its living children: a PostgreSQL
// server's postmaster and its backends.
func treeCPU(pid int) time.Duration {
	total, err := procCPU(pid)
	if err != nil {
		return 0
	}
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, k := range strings.Fields(string(kids)) {
		if kid, err := strconv.Atoi(k); err == nil {
			if cpu, err := procCPU(kid); err == nil {
				total += cpu
			}
		}
	}
	return total
}

// selfCPU is the benchmark's own CPU time (its gRPC and pgx clients).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// observability is what a server with logging and metrics on ships to: the
// development Kafka-protocol broker (kfake, as cmd/kafka-dev runs it) and a
// UDP socket that reads and drops StatsD packets.
type observability struct {
	broker *kfake.Cluster
	statsd net.PacketConn
}

func startObservability() (*observability, error) {
	broker, err := kfake.NewCluster(kfake.Ports(0), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		return nil, fmt.Errorf("start the Kafka dev broker: %w", err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		broker.Close()
		return nil, err
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return &observability{broker: broker, statsd: pc}, nil
}

func (o *observability) env() map[string]string {
	return map[string]string{
		"KAFKA_BROKERS": strings.Join(o.broker.ListenAddrs(), ","),
		"STATSD_ADDR":   o.statsd.LocalAddr().String(),
	}
}

func (o *observability) close() {
	o.broker.Close()
	o.statsd.Close()
}
