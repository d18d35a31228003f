#!/usr/bin/env bash
# The local stack without Docker: a PostgreSQL+PostGIS cluster of its own and
# a search-server, on loopback, state under .stack/.
#
#   deploy/local/stack.sh up      start (or keep) everything, import the sample
#                                 countries, run an example query
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
LISTEN_ADDR="${LISTEN_ADDR:-127.0.0.1:50051}"
SAMPLE="${SAMPLE:-$ROOT/testdata/ne_50m_countries.geojson}"
export DATABASE_URL="postgres://postgres@127.0.0.1:${PG_PORT}/search?sslmode=disable"

as_postgres() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_running() { as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; }
server_pid() { [[ -f "$STATE/search-server.pid" ]] && kill -0 "$(cat "$STATE/search-server.pid")" 2>/dev/null && cat "$STATE/search-server.pid"; }

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
	if server_pid >/dev/null; then
		echo "search-server: already running (pid $(server_pid))"
		return
	fi
	LISTEN_ADDR="$LISTEN_ADDR" nohup "$BIN/search-server" >"$STATE/search-server.log" 2>&1 &
	echo $! >"$STATE/search-server.pid"
	for _ in $(seq 1 100); do
		if "$BIN/search-client" --addr "$LISTEN_ADDR" --timeout 1s health >/dev/null 2>&1; then
			echo "search-server: $LISTEN_ADDR, SERVING (pid $(cat "$STATE/search-server.pid"), log: $STATE/search-server.log)"
			return
		fi
		kill -0 "$(cat "$STATE/search-server.pid")" 2>/dev/null || break
		sleep 0.2
	done
	echo "search-server did not become SERVING; its log:" >&2
	tail -20 "$STATE/search-server.log" >&2
	exit 1
}

up() {
	start_postgres
	"$BIN/search-server" migrate
	start_server
	echo "importing $(basename "$SAMPLE") (keyed by name: re-running replaces, never duplicates)"
	"$BIN/search-client" --addr "$LISTEN_ADDR" import "$SAMPLE" --key-property name
	echo
	echo "\$ search-client --addr $LISTEN_ADDR search --lat 48.85 --lng 2.35"
	"$BIN/search-client" --addr "$LISTEN_ADDR" search --lat 48.85 --lng 2.35
}

down() {
	if pid=$(server_pid); then
		kill -TERM "$pid"
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		echo "search-server: stopped"
	fi
	rm -f "$STATE/search-server.pid"
	if [[ -d "$STATE/pg" ]] && pg_running; then
		as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -m fast -w stop >/dev/null
		echo "postgres: stopped"
	fi
}

status() {
	if pg_running 2>/dev/null; then echo "postgres: running on 127.0.0.1:$PG_PORT"; else echo "postgres: stopped"; fi
	if pid=$(server_pid); then echo "search-server: running (pid $pid) on $LISTEN_ADDR"; else echo "search-server: stopped"; fi
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
