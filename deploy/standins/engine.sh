#!/usr/bin/env bash
# A Docker Engine of our own for make test-docker and make standins: Debian's
# dockerd on a private socket, data root, exec root and pidfile, stopped by
# its PID. The data root lives in the cache (images and build cache survive
# between runs on one machine); everything else is per run.
#
#   deploy/standins/engine.sh start RUNDIR   start one, print DOCKER_HOST=...
#   deploy/standins/engine.sh stop RUNDIR    stop what start started: the
#                                            containers, dockerd (and its
#                                            containerd), the bridges and
#                                            iptables chains it made
#
# With DOCKER_HOST set, start only checks that engine and stop does nothing.
set -euo pipefail

CACHE="${GEO_SEARCH_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/geo-search-docker}"

# install_engine installs Debian's docker.io (and debootstrap, for the
# stand-ins' base) when missing.
install_engine() {
	local packages=()
	command -v dockerd >/dev/null || packages+=(docker.io)
	command -v debootstrap >/dev/null || packages+=(debootstrap)
	[[ ${#packages[@]} -eq 0 ]] && return
	if [[ $(id -u) -ne 0 ]]; then
		echo "missing: ${packages[*]}; run: sudo apt-get install -y ${packages[*]}" >&2
		exit 1
	fi
	echo "installing ${packages[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# Debian's docker.io starts no daemon here (no systemd); if a
	# policy-rc.d-less init would, ours is separate anyway.
	apt-get install -y -qq --no-install-recommends "${packages[@]}" iptables >/dev/null
}

start() {
	local run=$1
	if [[ -n ${DOCKER_HOST:-} ]]; then
		docker info >/dev/null || { echo "DOCKER_HOST=$DOCKER_HOST does not answer docker info" >&2; exit 1; }
		echo "DOCKER_HOST=$DOCKER_HOST"
		return
	fi
	install_engine
	mkdir -p "$run" "$CACHE/engine"
	run=$(cd "$run" && pwd)
	# The bridges and iptables chains that exist before, so that stop
	# removes only what this engine adds.
	ip -o link show type bridge | awk -F': ' '{print $2}' | sort >"$run/bridges.before"
	local t
	for t in filter nat; do
		{ iptables -t "$t" -S 2>/dev/null || true; } >"$run/iptables.$t.before"
	done
	local sock="$run/docker.sock"
	# One engine per data root.
	if pgrep -f -- "--data-root $CACHE/engine " >/dev/null; then
		echo "another dockerd uses $CACHE/engine: $(pgrep -af -- "--data-root $CACHE/engine ")" >&2
		exit 1
	fi
	setsid dockerd --host "unix://$sock" --data-root "$CACHE/engine" --exec-root "$run/exec" \
		--pidfile "$run/dockerd.pid" --storage-driver overlay2 >"$run/dockerd.log" 2>&1 &
	echo $! >"$run/dockerd.pid.start"
	for _ in $(seq 1 120); do
		if DOCKER_HOST="unix://$sock" docker info >/dev/null 2>&1; then
			echo "DOCKER_HOST=unix://$sock"
			return
		fi
		if ! kill -0 "$(cat "$run/dockerd.pid.start")" 2>/dev/null; then
			tail -20 "$run/dockerd.log" >&2
			echo "dockerd exited" >&2
			exit 1
		fi
		sleep 0.5
	done
	tail -20 "$run/dockerd.log" >&2
	echo "dockerd did not answer within 60s" >&2
	exit 1
}

stop() {
	local run=$1 pid
	[[ -n ${DOCKER_HOST:-} && ! -f $run/dockerd.pid.start ]] && return
	[[ -f $run/dockerd.pid.start ]] || return 0
	pid=$(cat "$run/dockerd.pid.start")
	export DOCKER_HOST="unix://$run/docker.sock"
	if kill -0 "$pid" 2>/dev/null; then
		# Containers first (dockerd would stop them too, but a container
		# left by a failed run must not come back on the next start).
		local ids
		ids=$(docker ps -aq 2>/dev/null || true)
		[[ -n $ids ]] && docker rm -f $ids >/dev/null 2>&1 || true
		kill -TERM "$pid"
		for _ in $(seq 1 60); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "dockerd $pid did not stop in 30s: SIGKILL" >&2
			kill -KILL "$pid" || true
		fi
	fi
	# Its containerd and shims are its children (by the socket under
	# exec-root); any left is killed by its pidfile's path.
	local p
	for p in $(pgrep -f -- "$run/exec" || true); do
		echo "killing leftover $(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null)" >&2
		kill -KILL "$p" 2>/dev/null || true
	done
	umount -R "$run/exec" 2>/dev/null || true
	# The bridges and chains this engine added.
	local b c
	for b in $(ip -o link show type bridge | awk -F': ' '{print $2}' | sort | comm -13 "$run/bridges.before" -); do
		ip link delete "$b" 2>/dev/null || true
	done
	# Every rule it added (in reverse), then its chains.
	local t
	for t in filter nat; do
		[[ -f $run/iptables.$t.before ]] || continue
		iptables -t "$t" -S 2>/dev/null | grep '^-A ' | grep -vxF -f "$run/iptables.$t.before" | tac | while read -r rule; do
			eval "iptables -t $t -D ${rule#-A }" 2>/dev/null || true
		done
		for c in $(iptables -t "$t" -S 2>/dev/null | grep '^-N ' | grep -vxF -f "$run/iptables.$t.before" | awk '{print $2}'); do
			iptables -t "$t" -F "$c" 2>/dev/null || true
			iptables -t "$t" -X "$c" 2>/dev/null || true
		done
	done
	rm -f "$run/dockerd.pid.start"
}

case "${1:-}" in
start) start "${2:?RUNDIR}" ;;
stop) stop "${2:?RUNDIR}" ;;
install) install_engine ;;
*)
	echo "usage: $0 start|stop RUNDIR | install" >&2
	exit 2
	;;
esac
