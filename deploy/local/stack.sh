#!/usr/bin/env bash
# The local stack without Docker, on loopback, state and logs under .stack/:
#   - a Consul dev agent (bin/consul, the pinned build): UI and API on 8500,
#     DNS on 8600, so that search-client works with no flags;
#   - a PostgreSQL+PostGIS cluster of its own (5432);
#   - the development Kafka-protocol broker (bin/kafka-dev, kfake; 9092);
#   - the StatsD daemon (npm statsd, installed into .stack/statsd; UDP 8125)
#     flushing to Graphite's carbon-cache (Debian graphite-carbon; 2003),
#     whisper files in .stack/carbon/whisper, as in the graphite-statsd image;
#   - graphite-web (Debian graphite-web under gunicorn; 8080, as the Docker
#     stack's Graphite UI) with the service's dashboard
#     (deploy/graphite/dashboard.json, at /dashboard/search-service);
#   - two search-server instances (gRPC 50051, 50052; HTTP 8090, 8091: the
#     OGC API and /map) registered in Consul, sending metrics to StatsD and
#     logs to the broker, with geofencing on (FENCE_ENABLED: they create
#     its positions, events and checkpoint topics on the broker).
# Each takes its standard port when it is free and says which it took when
# not (Consul's are required); the choice is kept in .stack/ports.env.
#
#   deploy/local/stack.sh up      start what is not running, migrate, import
#                                 the sample countries, query through Consul DNS
#   deploy/local/stack.sh down    stop exactly what up started, by PID (data stays)
#   deploy/local/stack.sh status  what runs, on which port
#   deploy/local/stack.sh pids    the PIDs of what runs (for tests)
#
# The database cluster trusts local connections: it is for development only.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${STACK_DIR:-$ROOT/.stack}"
BIN="$ROOT/bin"
PG_MAJOR="${PG_MAJOR:-15}"
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
SAMPLE="${SAMPLE:-$ROOT/testdata/ne_50m_countries.geojson}"
CARBON="$STATE/carbon"
PORTS_FILE="$STATE/ports.env"
SERVERS=(search-server-1 search-server-2)
export CONSUL_HTTP_ADDR="127.0.0.1:8500"
export CONSUL_DNS_ADDR="127.0.0.1:8600"
export SERVICE_NAME="search-service"
export FENCE_ENABLED=true
# The in-memory point index (docs/INDEX.md): point lookups and geofencing
# answered from memory, exactly as PostGIS would; the lease keeps the two
# instances' token-less reads in step with each other's writes.
export MEMINDEX=on

as_postgres() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_running() { [[ -f "$STATE/pg/PG_VERSION" ]] && as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; }
# pid_of NAME: the pid of a process started here, if it still runs.
pid_of() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null && cat "$STATE/$1.pid"; }
running() { if [[ $1 == postgres ]]; then pg_running; else pid_of "$1" >/dev/null; fi; }

busy() { # busy tcp|udp PORT
	if [[ $1 == udp ]]; then ss -Hlun "sport = :$2" | grep -q .; else ss -Hltn "sport = :$2" | grep -q .; fi
}

# assign_ports gives each component a port: the one it has while it runs,
# else its standard one when free, else the next free one (said aloud).
assign_ports() {
	mkdir -p "$STATE"
	[[ -f "$PORTS_FILE" ]] && source "$PORTS_FILE"
	local spec var def proto owner p
	: >"$PORTS_FILE.new"
	for spec in PG_PORT:5432:tcp:postgres KAFKA_PORT:9092:tcp:kafka-dev \
		STATSD_PORT:8125:udp:statsd STATSD_MGMT_PORT:8126:tcp:statsd \
		CARBON_PORT:2003:tcp:carbon CARBON_PICKLE_PORT:2004:tcp:carbon CARBON_QUERY_PORT:7002:tcp:carbon \
		GRAPHITE_PORT:8080:tcp:graphite-web \
		SERVER1_PORT:50051:tcp:search-server-1 SERVER2_PORT:50052:tcp:search-server-2 \
		HTTP1_PORT:8090:tcp:search-server-1 HTTP2_PORT:8091:tcp:search-server-2; do
		IFS=: read -r var def proto owner <<<"$spec"
		p=${!var:-}
		if [[ -z $p ]] || ! running "$owner"; then
			p=$def
			while busy "$proto" "$p" || grep -q "=$p\$" "$PORTS_FILE.new"; do p=$((p + 1)); done
			[[ $p != "$def" ]] && echo "port $def ($proto) is taken: $owner uses $p"
		fi
		printf -v "$var" '%s' "$p"
		echo "$var=$p" >>"$PORTS_FILE.new"
	done
	mv "$PORTS_FILE.new" "$PORTS_FILE"
	for p in 8500 8600; do
		if busy tcp $p && ! running consul; then
			echo "port $p is taken by something else; Consul needs it (search-client looks there): free it first" >&2
			exit 1
		fi
	done
	export DATABASE_URL="postgres://postgres@127.0.0.1:${PG_PORT}/search?sslmode=disable"
	export KAFKA_BROKERS="127.0.0.1:${KAFKA_PORT}"
	export STATSD_ADDR="127.0.0.1:${STATSD_PORT}"
}

stop_pid() {
	local name=$1 pid
	if pid=$(pid_of "$name"); then
		kill -TERM "$pid"
		for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid"
			echo "$name: killed (it did not stop on SIGTERM)"
		else
			echo "$name: stopped"
		fi
	fi
	rm -f "$STATE/$name.pid"
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
	for _ in $(seq 1 150); do
		if eval "$ready" >/dev/null 2>&1; then
			echo "$name: running (pid $(cat "$STATE/$name.pid"), log: ${STATE#"$ROOT"/}/$name.log)"
			return
		fi
		kill -0 "$(cat "$STATE/$name.pid")" 2>/dev/null || break
		sleep 0.2
	done
	echo "$name did not start; its log:" >&2
	tail -20 "$STATE/$name.log" >&2
	exit 1
}

listening() { busy tcp "$1"; }

# taken PORT: a listener could not bind 127.0.0.1:PORT now. Tried rather
# than read from ss: the kernel hands out 50051 and 50052 as ephemeral
# ports too, and a connection that had one as its local end blocks the
# address even in TIME-WAIT (it had no SO_REUSEADDR), while the server
# side's own TIME-WAIT sockets do not. The probe binds as Go's listeners
# do (SO_REUSEADDR).
taken() {
	! python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

start_consul() {
	mkdir -p "$STATE/consul"
	start_daemon consul '"$BIN/consul" catalog services' \
		"$BIN/consul" agent -dev -ui -node local -bind 127.0.0.1 -client 127.0.0.1 -data-dir "$STATE/consul"
}

start_observability() {
	start_daemon kafka-dev "listening $KAFKA_PORT" "$BIN/kafka-dev" --port "$KAFKA_PORT"
	mkdir -p "$CARBON/whisper" "$CARBON/log" "$CARBON/lists"
	sed -e "s|@STATE@|$STATE|g" -e "s|@CONF@|$CARBON|g" -e "s|@LINE_PORT@|$CARBON_PORT|g" \
		-e "s|@PICKLE_PORT@|$CARBON_PICKLE_PORT|g" -e "s|@QUERY_PORT@|$CARBON_QUERY_PORT|g" \
		"$ROOT/deploy/local/carbon/carbon.conf.in" >"$CARBON/carbon.conf"
	cp "$ROOT/deploy/local/carbon/storage-schemas.conf" "$ROOT/deploy/local/carbon/storage-aggregation.conf" "$CARBON/"
	start_daemon carbon "listening $CARBON_PORT" carbon-cache --config="$CARBON/carbon.conf" \
		--pidfile="$CARBON/carbon-cache.pid" --logdir="$CARBON/log" --nodaemon start
	sed -e "s|port: 8125|port: $STATSD_PORT|" -e "s|mgmt_port: 8126|mgmt_port: $STATSD_MGMT_PORT|" \
		-e "s|graphitePort: 2003|graphitePort: $CARBON_PORT|" \
		"$ROOT/deploy/local/statsd/config.js" >"$STATE/statsd/config.js"
	start_daemon statsd "listening $STATSD_MGMT_PORT" node "$STATE/statsd/node_modules/statsd/stats.js" "$STATE/statsd/config.js"
	start_graphite_web
}

# start_graphite_web serves graphite-web on GRAPHITE_PORT over carbon's
# whisper files (and its cache), with settings of its own under
# .stack/graphite, and saves the service's dashboard into it.
start_graphite_web() {
	local dir="$STATE/graphite"
	mkdir -p "$dir/log"
	sed -e "s|@STATE@|$STATE|g" -e "s|@QUERY_PORT@|$CARBON_QUERY_PORT|g" \
		-e "s|@SECRET@|$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')|" \
		"$ROOT/deploy/local/graphite/stack_settings.py.in" >"$dir/stack_settings.py"
	local env=(env PYTHONPATH="$dir" GRAPHITE_SETTINGS_MODULE=stack_settings DJANGO_SETTINGS_MODULE=graphite.settings)
	if ! pid_of graphite-web >/dev/null; then
		# The web UI's static files: Debian's, linked, with dashboard.js
		# mended (deploy/local/graphite/dashboard-fix.js), as a Django app
		# of their own so that graphite-web finds its theme's CSS.
		local static="$dir/stack_static"
		rm -rf "$static"
		mkdir -p "$static"
		: >"$static/__init__.py"
		cp -rs /usr/share/graphite-web/static "$static/static"
		rm "$static/static/js/dashboard.js"
		cat "$ROOT/deploy/local/graphite/dashboard-fix.js" /usr/share/graphite-web/static/js/dashboard.js >"$static/static/js/dashboard.js"
		# Its own database (dashboards, users): created the first time
		# (about half a minute), a no-op after.
		"${env[@]}" django-admin migrate --noinput -v 0 >"$dir/log/migrate.log" 2>&1 ||
			{ echo "graphite-web: database setup failed; its log:" >&2; tail -20 "$dir/log/migrate.log" >&2; exit 1; }
	fi
	start_daemon graphite-web "listening $GRAPHITE_PORT" "${env[@]}" gunicorn \
		--bind "127.0.0.1:$GRAPHITE_PORT" --workers 2 --graceful-timeout 5 \
		--error-logfile "$dir/log/gunicorn.log" "django.core.wsgi:get_wsgi_application()"
	python3 "$ROOT/deploy/graphite/save-dashboard.py" "http://127.0.0.1:$GRAPHITE_PORT" "$ROOT/deploy/graphite/dashboard.json"
}

start_postgres() {
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
	echo "postgres: 127.0.0.1:$PG_PORT (log: ${STATE#"$ROOT"/}/pg/postgres.log)"
	if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'search'" | grep -q 1; then
		"$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE search" >/dev/null
	fi
}

start_servers() {
	local i name port
	for i in "${!SERVERS[@]}"; do
		name=${SERVERS[$i]}
		port_var="SERVER$((i + 1))_PORT"
		port=${!port_var}
		http_port_var="HTTP$((i + 1))_PORT"
		# Looked at again just before the start: the port may have been
		# taken, as an ephemeral one, since assign_ports chose it.
		if ! running "$name" && taken "$port"; then
			local was=$port
			while taken "$port" || grep -q "=$port\$" "$PORTS_FILE"; do port=$((port + 1)); done
			echo "port $was (tcp) is taken: $name uses $port"
			sed -i "s/^$port_var=.*/$port_var=$port/" "$PORTS_FILE"
			printf -v "$port_var" '%s' "$port"
		fi
		# Loopback listeners: the sample import and deletes need no token
		# and no ALLOW_OPEN_WRITES (a server listening where other hosts
		# reach it refuses writes without a token unless that is set).
		LISTEN_ADDR="127.0.0.1:$port" HTTP_LISTEN_ADDR="127.0.0.1:${!http_port_var}" start_daemon "$name" \
			"'$BIN/search-client' --addr 127.0.0.1:$port --timeout 1s health" "$BIN/search-server"
	done
}

# wait_discovered N: until Consul has N passing instances.
# wait_discovered N [SERVICE]: wait for N passing instances of SERVICE
# (the gRPC service by default) in Consul.
wait_discovered() {
	local service=${2:-search-service}
	for _ in $(seq 1 100); do
		if [[ $("$BIN/search-client" --service "$service" instances 2>/dev/null | grep -c ' passing ') -ge $1 ]]; then
			return
		fi
		sleep 0.2
	done
	echo "the servers did not turn passing in Consul as $service:" >&2
	"$BIN/search-client" --service "$service" instances >&2 || true
	exit 1
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

up() {
	assign_ports
	start_consul
	start_observability
	start_postgres
	"$BIN/search-server" migrate
	start_servers
	wait_discovered ${#SERVERS[@]}
	echo
	echo "\$ search-client instances"
	"$BIN/search-client" instances
	wait_discovered ${#SERVERS[@]} search-service-http
	echo
	echo "\$ search-client --service search-service-http instances   # the HTTP API, checked on /readyz"
	"$BIN/search-client" --service search-service-http instances
	echo
	echo "importing $(basename "$SAMPLE") into collection countries (keyed by name; a replace: re-running leaves exactly the sample)"
	"$BIN/search-client" import "$SAMPLE" --collection countries --key-property name --replace --verbose
	echo
	echo "\$ search-client collections"
	"$BIN/search-client" collections
	echo
	echo "\$ search-client search --lat 48.85 --lng 2.35 --collection countries    # found through Consul DNS"
	"$BIN/search-client" search --lat 48.85 --lng 2.35 --collection countries
	echo
	echo "\$ search-client logs --since 5m | grep -e registered -e Search   # both instances, from Kafka"
	"$BIN/search-client" logs --since 5m | grep -e "registered in consul" -e "SearchService/Search " | tail -4
	echo
	show_metric stats_counts.search-service.grpc.SearchService.Import.requests
	echo
	echo "\$ search-client track --collection countries testdata/track.csv   # geofencing (a second run: stale)"
	"$BIN/search-client" track --collection countries "$ROOT/testdata/track.csv"
	echo
	echo "\$ curl -s 'http://127.0.0.1:$HTTP1_PORT/locate?lat=48.85&lng=2.35'   # the HTTP API"
	curl -sS "http://127.0.0.1:$HTTP1_PORT/locate?lat=48.85&lng=2.35" | cut -c1-160
	echo
	echo "Map:        http://127.0.0.1:$HTTP1_PORT/map"
	echo "OGC API:    http://127.0.0.1:$HTTP1_PORT/   (OGC API - Features landing page; also :$HTTP2_PORT)"
	echo "Consul UI:  http://127.0.0.1:8500/ui"
	echo "Graphite:   http://127.0.0.1:$GRAPHITE_PORT   dashboard: http://127.0.0.1:$GRAPHITE_PORT/dashboard/search-service"
	echo "Metrics:    ${CARBON#"$ROOT"/}/whisper (whisper-fetch; stats_counts.search-service.*)"
	echo "Logs:       make logs (search-client logs --follow --brokers $KAFKA_BROKERS); files in ${STATE#"$ROOT"/}/"
	echo "Stop:       make down"
}

down() {
	local name
	for name in "${SERVERS[@]}" graphite-web statsd carbon kafka-dev consul; do
		stop_pid "$name"
	done
	if pg_running; then
		local pg_pid
		pg_pid=$(head -1 "$STATE/pg/postmaster.pid")
		as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -m fast -w stop >/dev/null
		# pg_ctl returns once the pid file is gone, which the postmaster
		# removes just before it exits: wait for the exit itself.
		for _ in $(seq 1 50); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
		echo "postgres: stopped"
	fi
}

status() {
	[[ -f "$PORTS_FILE" ]] && source "$PORTS_FILE"
	local name pid
	for name in consul kafka-dev carbon statsd graphite-web "${SERVERS[@]}"; do
		if pid=$(pid_of "$name"); then echo "$name: running (pid $pid)"; else echo "$name: stopped"; fi
	done
	if pg_running; then echo "postgres: running on 127.0.0.1:${PG_PORT:-?}"; else echo "postgres: stopped"; fi
	[[ -f "$PORTS_FILE" ]] && echo "ports: $(tr '\n' ' ' <"$PORTS_FILE")"
	return 0
}

pids() {
	local name pid
	for name in consul kafka-dev carbon statsd graphite-web "${SERVERS[@]}"; do
		if pid=$(pid_of "$name"); then echo "$pid"; fi
	done
	if pg_running; then head -1 "$STATE/pg/postmaster.pid"; fi
	return 0
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
pids) pids ;;
*)
	echo "usage: $0 up|down|status|pids" >&2
	exit 2
	;;
esac
