#!/usr/bin/env bash
# The Docker path of make up, down, status and logs (docker-compose.yml).
# It needs Docker (an engine) and Compose v2, and nothing else: no Go, no
# Consul build; the images build the binaries.
#
#   deploy/docker-stack.sh up       build, start and wait for every service,
#                                   import the sample countries, query them
#   deploy/docker-stack.sh down     stop and remove the containers (volumes stay)
#   deploy/docker-stack.sh status   docker compose ps
#   deploy/docker-stack.sh logs     every instance's log records, live, from Kafka
#   deploy/docker-stack.sh check    only check that Compose v2 is there
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest Compose that runs this file as written: `up --wait` that treats
# adopted one-shot jobs as done (2.7) and every key used here.
MIN_COMPOSE=2.20

# require_compose_v2 fails with what to do when `docker compose` is missing
# or older than MIN_COMPOSE. Compose v1 (`docker-compose`, Debian's 1.29)
# rejects this file (top-level name:, depends_on conditions, up --wait).
require_compose_v2() {
	local v major minor
	if v=$(docker compose version --short 2>/dev/null); then
		v=${v#v}
		IFS=. read -r major minor _ <<<"$v"
		if [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] &&
			((major > ${MIN_COMPOSE%.*} || (major == ${MIN_COMPOSE%.*} && minor >= ${MIN_COMPOSE#*.}))); then
			return 0
		fi
		echo "make up with Docker needs Docker Compose v$MIN_COMPOSE or newer; \`docker compose version\` says $v." >&2
	else
		echo "make up with Docker needs Docker Compose v2 (\`docker compose\`, the Compose plugin), which is not installed." >&2
		if command -v docker-compose >/dev/null 2>&1; then
			echo "Found $(docker-compose version --short 2>/dev/null || echo docker-compose) as docker-compose: that is Compose v1, which cannot read docker-compose.yml." >&2
		fi
	fi
	cat >&2 <<-'EOF'
		Install Compose v2: Docker's docker-compose-plugin package (Debian/Ubuntu, from
		Docker's apt repository; Ubuntu 24.04 also has docker-compose-v2), or Docker Desktop.
		Or run the stack without Docker: make up-native
	EOF
	exit 1
}

# wait_http_passing N: wait until Consul has N passing instances of the
# HTTP API (search-service-http, an HTTP check on /readyz), then list them.
wait_http_passing() {
	local out
	for _ in $(seq 1 30); do
		out=$(docker compose run --rm --no-deps search-client --service search-service-http instances 2>&1) || true
		if [[ $(grep -c ' passing ' <<<"$out") -ge $1 ]]; then
			echo "$out"
			return
		fi
		sleep 2
	done
	echo "$out" >&2
	echo "the HTTP API did not turn passing in Consul ($1 instances of search-service-http wanted)" >&2
	exit 1
}

up() {
	GEO_SEARCH_VERSION=$(git describe --always --dirty 2>/dev/null || echo unversioned)
	export GEO_SEARCH_VERSION
	docker compose up -d --build --wait
	echo
	echo "importing the sample countries (keyed by name: re-running replaces, never duplicates)"
	docker compose run --rm --no-deps import
	echo
	echo "\$ docker compose run --rm --no-deps search-client search --lat 48.85 --lng 2.35"
	docker compose run --rm --no-deps search-client search --lat 48.85 --lng 2.35
	echo
	echo "\$ docker compose run --rm --no-deps search-client --service search-service-http instances   # the HTTP API, checked on /readyz"
	wait_http_passing 2
	echo
	echo "Map:        http://localhost:8090/map"
	echo "OGC API:    http://localhost:8090/   (OGC API - Features landing page; search-server-1's HTTP API)"
	echo "Consul UI:  http://localhost:8500/ui"
	echo "Graphite:   http://localhost:8080   dashboard: http://localhost:8080/dashboard/search-service"
	echo "gRPC:       127.0.0.1:50051 (search-server-1; bin/search-client --addr 127.0.0.1:50051 ...)"
	echo "CLI:        docker compose run --rm --no-deps search-client --help"
	echo "Logs:       make logs"
	echo "Stop:       make down"
}

case "${1:-}" in
check) require_compose_v2 ;;
up) require_compose_v2 && up ;;
down) require_compose_v2 && docker compose down ;;
status) require_compose_v2 && docker compose ps ;;
logs) require_compose_v2 && docker compose run --rm --no-deps search-client logs --follow ;;
*)
	echo "usage: $0 up|down|status|logs|check" >&2
	exit 2
	;;
esac
