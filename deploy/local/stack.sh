#!/usr/bin/env bash
# The local stack without Docker, on loopback, state under .stack/:
#   - a Consul dev agent (bin/consul, the pinned build; UI and API on :8500,
#     DNS on :8600),
#   - a PostgreSQL+PostGIS cluster of its own (:55432),
#   - the development Kafka-protocol broker (bin/kafka-dev, kfake; :9092),
#   - the StatsD daemon (npm statsd, installed into .stack/statsd; :8125) flushing to Graphite's
#     carbon-cache (Debian graphite-carbon; :2003), whisper files in
#     .stack/carbon/whisper, as in the graphiteapp/graphite-statsd image,
#   - two search-server instances registered in Consul, sending metrics to
#     StatsD and logs to the broker.
#
#   deploy/local/stack.sh up      start (or keep) everything, import the sample
#                                 countries, run an example query found
#                                 through Consul DNS
#   deploy/local/stack.sh down    stop everything (data stays in .stack/)
#   deploy/local/stack.sh status  what runs
#
# The database cluster trusts local connections: it is for development only.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${STACK_DIR:-$ROOT/.stack}"
BIN="$ROOT/bin"
PG_MAJOR="${PG_MAJOR:-15}"
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_PORT="${PG_PORT:-55432}"
SERVER_PORTS=(50051 50052)
SAMPLE="${SAMPLE:-$ROOT/testdata/ne_50m_countries.geojson}"
export DATABASE_URL="postgres://postgres@127.0.0.1:${PG_PORT}/search?sslmode=disable"
export CONSUL_HTTP_ADDR="127.0.0.1:8500"
export CONSUL_DNS_ADDR="127.0.0.1:8600"
export SERVICE_NAME="search-service"
export KAFKA_BROKERS="127.0.0.1:9092"
export STATSD_ADDR="127.0.0.1:8125"
CARBON="$STATE/carbon"

as_postgres() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_running() { as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; }
# pid_of NAME: the pid of a process started here, if it still runs.
pid_of() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null && cat "$STATE/$1.pid"; }

stop_pid() {
	local name=$1 pid
	if pid=$(pid_of "$name"); then
		kill -TERM "$pid"
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		echo "$name: stopped"
	fi
	rm -f "$STATE/$name.pid"
}

start_consul() {
	mkdir -p "$STATE/consul"
	if pid=$(pid_of consul); then
		echo "consul:        already running (pid $pid)"
		return
	fi
	nohup "$BIN/consul" agent -dev -ui -node local -bind 127.0.0.1 -client 127.0.0.1 \
		-data-dir "$STATE/consul" >"$STATE/consul.log" 2>&1 &
	echo $! >"$STATE/consul.pid"
	for _ in $(seq 1 100); do
		if "$BIN/consul" catalog services >/dev/null 2>&1; then # answers once there is a leader
			echo "consul:        http://$CONSUL_HTTP_ADDR/ui, DNS $CONSUL_DNS_ADDR (log: $STATE/consul.log)"
			return
		fi
		sleep 0.2
	done
	echo "consul did not start; its log:" >&2
	tail -20 "$STATE/consul.log" >&2
	exit 1
}

# start_daemon NAME READY_CHECK COMMAND...: start COMMAND in the background
# unless NAME runs, and wait until READY_CHECK succeeds.
start_daemon() {
	local name=$1 ready=$2
	shift 2
	if pid=$(pid_of "$name"); then
		echo "$name: already running (pid $pid)"
		return
	fi
	nohup "$@" >"$STATE/$name.log" 2>&1 &
	echo $! >"$STATE/$name.pid"
	for _ in $(seq 1 100); do
		if eval "$ready" >/dev/null 2>&1; then
			echo "$name: running (pid $(cat "$STATE/$name.pid"), log: $STATE/$name.log)"
			return
		fi
		kill -0 "$(cat "$STATE/$name.pid")" 2>/dev/null || break
		sleep 0.2
	done
	echo "$name did not start; its log:" >&2
	tail -20 "$STATE/$name.log" >&2
	exit 1
}

listening() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_observability() {
	start_daemon kafka-dev "listening 9092" "$BIN/kafka-dev" --port 9092
	mkdir -p "$CARBON/whisper" "$CARBON/log" "$CARBON/lists"
	sed -e "s|@STATE@|$STATE|g" -e "s|@CONF@|$CARBON|g" "$ROOT/deploy/local/carbon/carbon.conf.in" >"$CARBON/carbon.conf"
	cp "$ROOT/deploy/local/carbon/storage-schemas.conf" "$ROOT/deploy/local/carbon/storage-aggregation.conf" "$CARBON/"
	start_daemon carbon "listening 2003" carbon-cache --config="$CARBON/carbon.conf" \
		--pidfile="$CARBON/carbon-cache.pid" --logdir="$CARBON/log" --nodaemon start
	start_daemon statsd "listening 8126" node "$STATE/statsd/node_modules/statsd/stats.js" \
		"$ROOT/deploy/local/statsd/config.js"
}

# show_metric PATH: wait (StatsD flushes every 10 s) for a positive point
# in the last two minutes of a whisper file and print the positive points.
show_metric() {
	local wsp="$CARBON/whisper/$(echo "$1" | tr . /).wsp"
	local since=$(($(date +%s) - 120))
	for _ in $(seq 1 150); do
		[[ -f "$wsp" ]] && whisper-fetch --from=$since "$wsp" | awk '$2 != "None" && $2 > 0' | grep -q . && break
		sleep 0.2
	done
	echo "\$ whisper-fetch ${wsp#"$ROOT"/}   # $1"
	whisper-fetch --from=$since "$wsp" | awk '$2 != "None" && $2 > 0' | tail -3
}

start_postgres() {
	mkdir -p "$STATE"
	if [[ ! -f "$STATE/pg/PG_VERSION" ]]; then
		mkdir -p "$STATE/pg"
		[[ $(id -u) -eq 0 ]] && chown postgres: "$STATE/pg"
		as_postgres "$PG_BIN/initdb" -D "$STATE/pg" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
	fi
	if ! pg_running; then
		[[ $(id -u) -eq 0 ]] && chown postgres: "$STATE/pg"
		as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -l "$STATE/pg/postgres.log" -w \
			-o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $STATE/pg" start >/dev/null
	fi
	echo "postgres:      127.0.0.1:$PG_PORT (log: $STATE/pg/postgres.log)"
	if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'search'" | grep -q 1; then
		"$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE search" >/dev/null
	fi
}

start_server() {
	local n=$1 port=$2 name="search-server-$1"
	if pid=$(pid_of "$name"); then
		echo "$name: already running (pid $pid)"
		return
	fi
	LISTEN_ADDR="127.0.0.1:$port" nohup "$BIN/search-server" >"$STATE/$name.log" 2>&1 &
	echo $! >"$STATE/$name.pid"
	for _ in $(seq 1 100); do
		if "$BIN/search-client" --addr "127.0.0.1:$port" --timeout 1s health >/dev/null 2>&1; then
			echo "$name: 127.0.0.1:$port, SERVING (pid $(cat "$STATE/$name.pid"), log: $STATE/$name.log)"
			return
		fi
		kill -0 "$(cat "$STATE/$name.pid")" 2>/dev/null || break
		sleep 0.2
	done
	echo "$name did not become SERVING; its log:" >&2
	tail -20 "$STATE/$name.log" >&2
	exit 1
}

# wait_discovered N: until Consul DNS answers N passing instances.
wait_discovered() {
	for _ in $(seq 1 100); do
		if [[ $("$BIN/search-client" instances 2>/dev/null | grep -c ' passing ') -ge $1 ]]; then
			return
		fi
		sleep 0.2
	done
	echo "the servers did not turn passing in Consul:" >&2
	"$BIN/search-client" instances >&2 || true
	exit 1
}

up() {
	start_consul
	start_observability
	start_postgres
	"$BIN/search-server" migrate
	for i in "${!SERVER_PORTS[@]}"; do
		start_server $((i + 1)) "${SERVER_PORTS[$i]}"
	done
	wait_discovered ${#SERVER_PORTS[@]}
	echo
	echo "\$ search-client instances"
	"$BIN/search-client" instances
	echo
	echo "importing $(basename "$SAMPLE") (keyed by name: re-running replaces, never duplicates)"
	"$BIN/search-client" import "$SAMPLE" --key-property name
	echo
	echo "\$ search-client search --lat 48.85 --lng 2.35    # found through Consul DNS"
	"$BIN/search-client" search --lat 48.85 --lng 2.35
	echo
	echo "\$ search-client logs --since 5m | grep -e registered -e Search   # both instances, from Kafka"
	"$BIN/search-client" logs --since 5m | grep -e "registered in consul" -e "SearchService/Search " | tail -4
	echo
	show_metric stats_counts.search-service.grpc.SearchService.Import.requests
	echo
	echo "Consul UI: http://127.0.0.1:8500/ui   Metrics: $CARBON/whisper (whisper-fetch)   Stop: make down"
}

down() {
	for i in "${!SERVER_PORTS[@]}"; do
		stop_pid "search-server-$((i + 1))"
	done
	stop_pid statsd
	stop_pid carbon
	stop_pid kafka-dev
	stop_pid consul
	if [[ -d "$STATE/pg" ]] && pg_running; then
		as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -m fast -w stop >/dev/null
		echo "postgres: stopped"
	fi
}

status() {
	if pid=$(pid_of consul); then echo "consul: running (pid $pid) on $CONSUL_HTTP_ADDR"; else echo "consul: stopped"; fi
	for name in kafka-dev carbon statsd; do
		if pid=$(pid_of "$name"); then echo "$name: running (pid $pid)"; else echo "$name: stopped"; fi
	done
	if pg_running 2>/dev/null; then echo "postgres: running on 127.0.0.1:$PG_PORT"; else echo "postgres: stopped"; fi
	for i in "${!SERVER_PORTS[@]}"; do
		local name="search-server-$((i + 1))"
		if pid=$(pid_of "$name"); then echo "$name: running (pid $pid) on 127.0.0.1:${SERVER_PORTS[$i]}"; else echo "$name: stopped"; fi
	done
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*)
	echo "usage: $0 up|down|status" >&2
	exit 2
	;;
esac
