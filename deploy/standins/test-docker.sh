#!/usr/bin/env bash
# make test-docker: the Docker stack started for real. It starts a Docker
# Engine of its own (engine.sh; or uses the one DOCKER_HOST names), builds
# the stand-in images (build.sh), then runs the README's Docker section as a
# user would, from the README itself (the commands of its ```sh blocks, in
# order), and checks what the section promises:
#
#   - `make up` takes the Docker path (docker info answers) and ends healthy;
#   - the import job exits 0;
#   - search-client, in a container, finds France through Consul DNS, with
#     both servers passing in Consul;
#   - search-client logs --follow shows records of both instances;
#   - Graphite's render API has the Search rate;
#   - the map page and the OGC landing page answer on the published port;
#   - a KV change restarts both servers under envconsul while a client
#     container searches in a loop, and no search fails;
#   - make down then make up keeps the imported data (volumes);
#   - a full teardown (docker compose down --volumes) leaves no container,
#     network or volume of the project.
#
# Whatever happens, it stops what it started: the stack, then the engine
# (by PID), and checks that no process of that engine and no bridge or veth
# it made is left (ps, ip link).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"

# The ports the compose file publishes (the native stack uses some of
# them). When one is taken on the host and the engine is ours, the whole
# test runs in a network namespace of its own (its loopback, its ports),
# reaching Debian's mirror, the Go proxy and npm through a veth pair and
# NAT, all removed afterwards.
PORTS=(8500 8600 8080 8090 50051)
busy() {
	local p
	for p in "${PORTS[@]}"; do
		ss -ltnH "sport = :$p" | grep -q . && return 0
		ss -lunH "sport = :$p" | grep -q . && return 0
	done
	return 1
}
if [[ -z ${DOCKER_HOST:-} && -z ${GEO_SEARCH_TEST_NETNS:-} ]] && busy; then
	ns=geo-search-test-$$
	n=$((($$ % 250) + 1))
	host_if=gst$$h
	echo "a published port is taken on the host: running in network namespace $ns"
	nat=(-t nat -A POSTROUTING -s "10.213.$n.0/30" ! -o "$host_if" -j MASQUERADE)
	fwd_in=(-A FORWARD -i "$host_if" -j ACCEPT)
	fwd_out=(-A FORWARD -o "$host_if" -j ACCEPT)
	netns_down() {
		iptables "${nat[@]/-A/-D}" 2>/dev/null || true
		iptables "${fwd_in[@]/-A/-D}" 2>/dev/null || true
		iptables "${fwd_out[@]/-A/-D}" 2>/dev/null || true
		ip link delete "$host_if" 2>/dev/null || true
		ip netns delete "$ns" 2>/dev/null || true
	}
	trap netns_down EXIT
	ip netns add "$ns"
	ip link add "$host_if" type veth peer name eth0 netns "$ns"
	ip addr add "10.213.$n.1/30" dev "$host_if"
	ip link set "$host_if" up
	ip -n "$ns" addr add "10.213.$n.2/30" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
	ip -n "$ns" route add default via "10.213.$n.1"
	iptables "${nat[@]}"
	iptables "${fwd_in[@]}"
	iptables "${fwd_out[@]}"
	rc=0
	# nsenter, not ip netns exec, which mounts a sysfs of its own without
	# the cgroup file systems dockerd needs.
	nsenter --net="/run/netns/$ns" env GEO_SEARCH_TEST_NETNS="$ns" "$0" "$@" || rc=$?
	exit $rc
fi
RUN=$(mktemp -d /tmp/geo-search-docker.XXXXXX)
PROJECT=geo-search
links_before=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort)

step() { printf '\n=== %s (%ss)\n' "$*" "$SECONDS"; }
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

cleanup() {
	local rc=$?
	set +e
	step "teardown"
	if [[ -n ${DOCKER_HOST:-} ]] && docker info >/dev/null 2>&1; then
		if ((rc != 0)); then
			docker compose ps -a
			docker compose logs --no-color --tail 40 2>&1 | tail -200
		fi
		docker compose --profile '*' down --volumes --remove-orphans -t 5 >/dev/null 2>&1
		docker ps -aq --filter label=geo-search.test-docker | xargs -r docker rm -f >/dev/null 2>&1
	fi
	deploy/standins/engine.sh stop "$RUN"
	local left
	left=$(pgrep -af -- "$RUN" || true)
	if [[ -n $left ]]; then
		echo "FAIL: processes of the engine are left running:" >&2
		echo "$left" >&2
		rc=1
	fi
	left=$(comm -13 <(echo "$links_before") <(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort))
	if [[ -n ${started_engine:-} && -n $left ]]; then
		echo "FAIL: network links are left: $left" >&2
		rc=1
	fi
	rm -rf "$RUN"
	if ((rc == 0)); then echo "ok: test-docker passed; nothing left running ($SECONDS s)"; else echo "test-docker FAILED ($SECONDS s)" >&2; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

busy && fail "a port the compose file publishes is in use: $(ss -ltnupH | grep -E ":($(IFS='|'; echo "${PORTS[*]}")) ")"

step "engine"
[[ -n ${DOCKER_HOST:-} ]] || started_engine=1
host=$(deploy/standins/engine.sh start "$RUN")
export "${host?}"
# Compose v2 as the docker CLI's plugin (make compose), in a client
# configuration of our own.
export DOCKER_CONFIG="$RUN/docker-config"
mkdir -p "$DOCKER_CONFIG/cli-plugins"
ln -s "$ROOT/bin/docker-compose" "$DOCKER_CONFIG/cli-plugins/docker-compose"
docker compose version

step "stand-in images (make standins)"
deploy/standins/build.sh | tee "$RUN/standins.log"
GEO_SEARCH_ENVCONSUL_FROM=$(awk -F= '/GEO_SEARCH_ENVCONSUL_FROM=/ {print $2}' "$RUN/standins.log")
export GEO_SEARCH_ENVCONSUL_FROM

# The README's Docker section: from "**With Docker**" to "**Without
# Docker**"; its commands are the lines of its ```sh blocks.
readme_commands() {
	awk '/^\*\*With Docker\*\*/ {s=1} /^\*\*Without Docker\*\*/ {s=0} s && /^```sh/ {b=1; next} s && /^```/ {b=0} s && b' README.md |
		grep -v '^[[:space:]]*$'
}
mapfile -t commands < <(readme_commands)
((${#commands[@]} > 0)) || fail "the README's Docker section has no \`\`\`sh block"
printf 'README commands:\n'; printf '  %s\n' "${commands[@]}"

# run_readme N: runs the README's command N as written (bash -c), bounded,
# into $RUN/out.N; follow-mode commands run 30 s and are then stopped.
# A comment "# exits N" says the status the README promises.
run_readme() {
	local cmd=${commands[$1]} t=1200 rc=0 want=0
	if [[ $cmd =~ \#\ exits\ ([0-9]+) ]]; then want=${BASH_REMATCH[1]}; fi
	cmd=$(sed 's/[[:space:]]*#.*$//' <<<"$cmd")
	[[ $cmd == *--follow* ]] && t=30
	echo "\$ $cmd"
	timeout -s INT "$t" bash -c "$cmd" >"$RUN/out.$1" 2>&1 || rc=$?
	sed 's/^/    /' "$RUN/out.$1" | tail -40
	if [[ $cmd == *--follow* ]]; then
		[[ $rc == 124 || $rc == 130 || $rc == 0 ]] || fail "$cmd: exit $rc"
	elif ((rc != want)); then
		fail "$cmd: exit $rc, the README says $want"
	fi
}

index_of() {
	local i
	for i in "${!commands[@]}"; do
		[[ ${commands[$i]} == "$1"* ]] && { echo "$i"; return; }
	done
	fail "the README's Docker section does not run: $1"
}

compose_run() { docker compose run --rm --no-deps "$@"; }

step "make up"
i_up=$(index_of "make up")
run_readme "$i_up"
grep -q 'docker compose up\|Container .* Healthy\|importing the sample' "$RUN/out.$i_up" || fail "make up did not take the Docker path"
for s in consul postgres graphite kafka search-server-1 search-server-2; do
	[[ $(docker inspect -f '{{.State.Health.Status}}' "$PROJECT-$s-1") == healthy ]] || fail "$s is not healthy"
done
echo "every long-running service is healthy"

step "the rest of the README's commands"
for i in "${!commands[@]}"; do
	((i == i_up)) && continue
	case ${commands[$i]} in
	"make down" | "make up"* | *" down "*) continue ;; # below, in their order
	esac
	run_readme "$i"
done

step "the README's track file made its events (geofencing)"
i_track=$(index_of 'docker compose run --rm --no-deps -v "$PWD/testdata:/data:ro" search-client track')
for want in '"type":"enter","seq":1,.*"key":"France"' '"type":"exit","seq":2,.*"key":"France"' '"type":"enter","seq":3,.*"key":"Belgium"'; do
	grep -q "$want" "$RUN/out.$i_track" || fail "search-client track of testdata/track.csv printed no $want"
done
echo "enter France, exit France, enter Belgium"

step "the import job's exit code"
compose_run import >"$RUN/import.out" 2>&1 || fail "docker compose run --rm --no-deps import: exit $?: $(tail -5 "$RUN/import.out")"
tail -3 "$RUN/import.out"

step "search through Consul DNS, both servers passing"
compose_run search-client search --lat 48.85 --lng 2.35 | tee "$RUN/search.out"
grep -q France "$RUN/search.out" || fail "search --lat 48.85 --lng 2.35 did not find France"
compose_run search-client instances | tee "$RUN/instances.out"
[[ $(grep -c ' passing ' "$RUN/instances.out") -eq 2 ]] || fail "want 2 passing instances of search-service"
mapfile -t instances < <(awk 'NR > 1 {print $3}' "$RUN/instances.out")

step "logs --follow shows both instances"
timeout -s INT 25 docker compose run --rm --no-deps search-client logs --follow >"$RUN/logs.out" 2>&1 || true
for id in "${instances[@]}"; do
	grep -qF "$id" "$RUN/logs.out" || fail "logs --follow shows no record of instance $id: $(tail -5 "$RUN/logs.out")"
done
echo "records of ${instances[*]}: $(wc -l <"$RUN/logs.out") lines"

step "Graphite's render API has the Search rate"
target='stats.search-service.grpc.*.Search.requests'
ok=
for _ in $(seq 1 20); do
	if curl -fsS "http://127.0.0.1:8080/render?target=$target&from=-10min&format=json" >"$RUN/render.json" &&
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if any(v and v > 0 for s in d for v, _ in s["datapoints"]) else 1)' "$RUN/render.json"; then
		ok=1
		break
	fi
	compose_run search-client search --query fran >/dev/null 2>&1 || true
	sleep 3
done
[[ -n $ok ]] || fail "no Search rate in Graphite ($target): $(head -c 300 "$RUN/render.json")"
echo "render $target: $(head -c 200 "$RUN/render.json")"

step "the map page and the OGC landing page on the published port"
curl -fsS -o /dev/null -w '/map %{http_code}\n' http://127.0.0.1:8090/map || fail "http://localhost:8090/map"
curl -fsS -H 'Accept: application/json' http://127.0.0.1:8090/ >"$RUN/landing.json" || fail "http://localhost:8090/"
grep -q '"links"' "$RUN/landing.json" || fail "the OGC landing page has no links: $(head -c 300 "$RUN/landing.json")"
echo "/ is the OGC API landing page"

step "a KV change restarts both servers under envconsul; a client searching in a loop sees no failure"
# The client container: the image's search-client, in a loop, on the
# Debian base (the image itself has no shell), in the stack's network.
docker create --name "$PROJECT-test-client-src" geo-search:local >/dev/null
docker cp "$PROJECT-test-client-src:/usr/local/bin/search-client" "$RUN/search-client"
docker rm "$PROJECT-test-client-src" >/dev/null
uptime_of() { compose_run search-client --addr "$1:50051" monitor | awk '/^uptime:/ {print $2}'; }
before=$(date +%s)
docker run -d --name "$PROJECT-test-client" --label geo-search.test-docker=1 --network "${PROJECT}_default" \
	-e CONSUL_DNS_ADDR=consul:8600 -v "$RUN/search-client:/usr/local/bin/search-client:ro" debian:bookworm-slim \
	bash -c 'ok=0; failed=0; while [ ! -e /tmp/stop ]; do
		if search-client --timeout 10s search --lat 48.85 --lng 2.35 >/tmp/out 2>&1 && grep -q France /tmp/out; then ok=$((ok+1)); else failed=$((failed+1)); cat /tmp/out; fi
	done; echo "searches: ok=$ok failed=$failed"' >/dev/null
sleep 3
level=$(docker compose exec -T consul consul kv get search-service/config/log_level)
new=debug
[[ $level == debug ]] && new=info
docker compose exec -T consul consul kv put search-service/config/log_level "$new"
changed=$(date +%s)
restarted=()
for _ in $(seq 1 60); do
	restarted=()
	for s in search-server-1 search-server-2; do
		u=$(uptime_of "$s" 2>/dev/null || true)
		# uptime like 12s or 1m3s: restarted when shorter than the time
		# since the change.
		if [[ -n $u ]] && python3 -c 'import sys,re; u=sys.argv[1]; s=sum(int(n)*{"h":3600,"m":60,"s":1}[k] for n,k in re.findall(r"(\d+)([hms])",u)); sys.exit(0 if s < int(sys.argv[2]) else 1)' "$u" "$(($(date +%s) - changed))"; then
			restarted+=("$s")
		fi
	done
	((${#restarted[@]} == 2)) && break
	sleep 2
done
((${#restarted[@]} == 2)) || fail "both servers should have restarted after the KV change; restarted: ${restarted[*]:-none}"
echo "both servers restarted ($(($(date +%s) - changed)) s after the change)"
sleep 5
docker exec "$PROJECT-test-client" touch /tmp/stop
docker wait "$PROJECT-test-client" >/dev/null
docker logs "$PROJECT-test-client" | tail -5 | tee "$RUN/loop.out"
docker rm "$PROJECT-test-client" >/dev/null
grep -q 'searches: ok=[1-9][0-9]* failed=0$' "$RUN/loop.out" || fail "the client's searches failed across the restart ($(($(date +%s) - before)) s of searching)"

step "make down, make up: the imported data stays"
printf '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"Volume check"},"geometry":{"type":"Polygon","coordinates":[[[7.5,47.5],[7.6,47.5],[7.6,47.6],[7.5,47.6],[7.5,47.5]]]}}]}\n' >"$RUN/marker.geojson"
docker compose run --rm --no-deps -v "$RUN/marker.geojson:/data/marker.geojson:ro" search-client import /data/marker.geojson --collection volume-check --key-property name
run_readme "$(index_of "make down")"
[[ -z $(docker compose ps -q) ]] || fail "make down left containers running"
[[ -n $(docker volume ls -q --filter label=com.docker.compose.project=$PROJECT) ]] || fail "make down removed the volumes"
run_readme "$i_up"
compose_run search-client search --collection volume-check --query volume | tee "$RUN/marker.out"
grep -q 'Volume check' "$RUN/marker.out" || fail "the data imported before make down is gone"

step "full teardown"
run_readme "$(index_of "docker compose --profile '*' down --volumes")"
left="$(docker ps -aq --filter label=com.docker.compose.project=$PROJECT)$(docker network ls -q --filter label=com.docker.compose.project=$PROJECT)$(docker volume ls -q --filter label=com.docker.compose.project=$PROJECT)"
[[ -z $left ]] || fail "docker compose down --volumes left containers, networks or volumes: $left"
echo "no container, network or volume of $PROJECT is left"
