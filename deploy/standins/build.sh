#!/usr/bin/env bash
# Builds the stand-in images (README.md here) into the engine DOCKER_HOST
# names, tagged with the names docker-compose.yml and the Dockerfiles use,
# for machines that reach no registry. make standins runs it.
#
# The base is `debootstrap --variant=minbase bookworm` from Debian's mirror
# plus `docker import`, with the host's CA bundle (so that the Go module
# proxy and npm answer inside builds where a TLS proxy re-signs). The
# rootfs tarball, the Go toolchain and StatsD's packages are cached in
# $GEO_SEARCH_DOCKER_CACHE (default ~/.cache/geo-search-docker); an image
# whose inputs have not changed is not built again (label
# geo-search.standin.inputs).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/deploy/standins"
CACHE="${GEO_SEARCH_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/geo-search-docker}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
export DOCKER_BUILDKIT=1
# docker build with BuildKit: a client without the buildx plugin (Docker's
# own CLI 23 and later) refuses DOCKER_BUILDKIT=1; Debian's docker.io client
# has BuildKit built in.
DOCKER_BUILD=(docker build)
if ! docker buildx version >/dev/null 2>&1 && [[ $(docker version -f '{{.Client.Version}}' 2>/dev/null) != 20.* ]]; then
	[[ -x /usr/bin/docker ]] || { echo "docker build needs the buildx plugin, or Debian's docker.io client" >&2; exit 1; }
	DOCKER_BUILD=(/usr/bin/docker build)
fi
mkdir -p "$CACHE"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The names the compose file and the Dockerfiles use.
image_of() { awk -v s="$1" '$0 ~ "^  " s ":$" {f=1} f && $1 == "image:" {print $2; exit}' "$ROOT/docker-compose.yml"; }
GO_VERSION=$(awk -F= '/^ARG GO_VERSION=/ {print $2}' "$ROOT/deploy/Dockerfile")
DISTROLESS=$(awk '/^FROM gcr.io\/distroless/ {print $2}' "$ROOT/deploy/Dockerfile")
POSTGRES=$(awk '/^FROM postgres:/ {print $2}' "$ROOT/deploy/postgis/Dockerfile")
CONSUL=$(image_of consul)
GRAPHITE=$(image_of graphite)
KAFKA=$(image_of kafka)
ENVCONSUL_VERSION=$(awk -F= '/^ARG ENVCONSUL_VERSION=/ {print $2}' "$ROOT/deploy/Dockerfile")
ENVCONSUL="geo-search-standin/envconsul:$ENVCONSUL_VERSION"
for v in GO_VERSION DISTROLESS POSTGRES CONSUL GRAPHITE KAFKA ENVCONSUL_VERSION; do
	[[ -n ${!v} ]] || { echo "build.sh: could not read $v from the compose file or Dockerfiles" >&2; exit 1; }
done

# build NAME CONTEXT [docker build args...]: build CONTEXT as NAME unless an
# image NAME built from the same inputs exists.
build() {
	local name=$1 ctx=$2 sum have
	shift 2
	sum=$( (cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum; echo "$*") | sha256sum | cut -c1-16)
	have=$(docker image inspect -f '{{index .Config.Labels "geo-search.standin.inputs"}}' "$name" 2>/dev/null || true)
	if [[ $have == "$sum" ]]; then
		echo "stand-in $name: up to date"
		return
	fi
	echo "stand-in $name: building"
	"${DOCKER_BUILD[@]}" -q --label "geo-search.standin.inputs=$sum" --label "geo-search.standin=true" -t "$name" "$@" "$ctx" >/dev/null
}

# context NAME: a fresh build context with deploy/standins/NAME's files.
context() {
	rm -rf "${work:?}/$1"
	mkdir -p "$work/$1"
	cp -a "$HERE/$1/." "$work/$1/"
	rm -f "$work/$1"/*.go
	echo "$work/$1"
}

base() {
	local tar="$CACHE/bookworm-minbase.tar"
	if [[ ! -f $tar ]]; then
		echo "debootstrap --variant=minbase bookworm (about 2 minutes, once)"
		local fs="$CACHE/rootfs.tmp"
		if [[ ! -f $fs.ok ]]; then
			rm -rf "$fs"
			debootstrap --variant=minbase bookworm "$fs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
				{ tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
			touch "$fs.ok"
		fi
		rm -f "$fs/etc/apt/sources.list"
		cat >"$fs/etc/apt/sources.list.d/debian.sources" <<-EOF
			Types: deb
			URIs: $MIRROR
			Suites: bookworm bookworm-updates
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

			Types: deb
			URIs: ${MIRROR%/debian}/debian-security
			Suites: bookworm-security
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		EOF
		# As the real image: no recommends cache, no downloaded packages.
		printf 'APT::Install-Recommends "false";\n' >"$fs/etc/apt/apt.conf.d/90standin"
		rm -rf "$fs"/var/cache/apt/archives/*.deb "$fs"/var/lib/apt/lists/* "$fs"/tmp/* "$fs"/var/log/*.log
		tar -C "$fs" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
		rm -rf "$fs" "$fs.ok"
	fi
	# The host's CA bundle, which apt's ca-certificates would rebuild from
	# /usr/local/share/ca-certificates too.
	local ctx="$work/debian"
	mkdir -p "$ctx"
	cp "$CA_BUNDLE" "$ctx/host-ca.crt"
	local sum
	sum=$(cat "$tar" "$ctx/host-ca.crt" | sha256sum | cut -c1-16)
	if [[ $(docker image inspect -f '{{index .Config.Labels "geo-search.standin.inputs"}}' debian:bookworm-slim 2>/dev/null) == "$sum" ]]; then
		echo "stand-in debian:bookworm-slim: up to date"
		return
	fi
	echo "stand-in debian:bookworm-slim: importing"
	docker import -c 'CMD ["bash"]' "$tar" geo-search-standin/rootfs:bookworm >/dev/null
	cat >"$ctx/Dockerfile" <<-'EOF'
		FROM geo-search-standin/rootfs:bookworm
		COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt
		COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt
		ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
		CMD ["bash"]
	EOF
	"${DOCKER_BUILD[@]}" -q --label "geo-search.standin.inputs=$sum" --label "geo-search.standin=true" -t debian:bookworm-slim "$ctx" >/dev/null
}

golang() {
	local goroot ctx
	if [[ $(go env GOVERSION) == "go$GO_VERSION" ]]; then
		goroot=$(go env GOROOT)
	else
		# The same toolchain from the Go module proxy (golang.org/toolchain).
		goroot=$(GOTOOLCHAIN="go$GO_VERSION" go env GOROOT)
	fi
	local tar="$CACHE/go$GO_VERSION.linux-$(go env GOARCH).tar"
	if [[ ! -f $tar ]]; then
		tar -C "$(dirname "$goroot")" --transform "s|^$(basename "$goroot")|go|" \
			--exclude="$(basename "$goroot")/test" --exclude="$(basename "$goroot")/pkg/obj" \
			-cf "$tar.tmp" "$(basename "$goroot")" && mv "$tar.tmp" "$tar"
	fi
	ctx=$(context golang)
	ln "$tar" "$ctx/go.tar" 2>/dev/null || cp "$tar" "$ctx/go.tar"
	build "golang:$GO_VERSION-bookworm" "$ctx" --build-arg "GO_VERSION=$GO_VERSION"
}

# programs builds the stand-ins' Go programs (envconsul, the Kafka-protocol
# broker) on the host, static.
programs() {
	(cd "$HERE" && CGO_ENABLED=0 go build -trimpath -o "$work/bin/" ./envconsul ./kafka)
}

statsd() {
	local dest="$CACHE/statsd"
	if ! cmp -s "$ROOT/deploy/local/statsd/package-lock.json" "$dest/package-lock.json" || [[ ! -d $dest/node_modules/statsd ]]; then
		rm -rf "$dest"
		mkdir -p "$dest"
		cp "$ROOT/deploy/local/statsd/package.json" "$ROOT/deploy/local/statsd/package-lock.json" "$dest/"
		(cd "$dest" && npm ci --no-audit --no-fund --loglevel=error --omit=optional)
	fi
}

graphite() {
	local ctx conf
	ctx=$(context graphite)
	conf="$ctx/conf"
	mkdir -p "$conf" "$ctx/statsd/config"
	statsd
	cp -a "$CACHE/statsd/node_modules" "$ctx/statsd/"
	sed -e 's|address: "127.0.0.1"|address: "0.0.0.0"|' "$ROOT/deploy/local/statsd/config.js" >"$ctx/statsd/config/udp.js"
	local paths=(-e 's|@STATE@/carbon/whisper|/opt/graphite/storage/whisper|g'
		-e 's|@STATE@/graphite/stack_static|/opt/graphite/conf/stack_static|g'
		-e 's|@STATE@/graphite|/opt/graphite/storage|g' -e 's|@STATE@/carbon|/opt/graphite/storage/carbon|g'
		-e 's|@CONF@|/opt/graphite/conf|g' -e 's|@LINE_PORT@|2003|g' -e 's|@PICKLE_PORT@|2004|g' -e 's|@QUERY_PORT@|7002|g')
	sed "${paths[@]}" -e 's|^\(LINE_RECEIVER_INTERFACE\|PICKLE_RECEIVER_INTERFACE\) = .*|\1 = 0.0.0.0|' \
		"$ROOT/deploy/local/carbon/carbon.conf.in" >"$conf/carbon.conf"
	# No tag database (it would ask graphite-web's /tags for each series).
	printf 'ENABLE_TAGS = False\n' >>"$conf/carbon.conf"
	# As the real image: the key from GRAPHITE_SECRET_KEY (it signs
	# sessions only).
	sed "${paths[@]}" -e "s|^SECRET_KEY = .*|SECRET_KEY = __import__('os').environ.get('GRAPHITE_SECRET_KEY', 'UNSAFE_DEFAULT')|" \
		"$ROOT/deploy/local/graphite/stack_settings.py.in" >"$conf/stack_settings.py"
	cp "$ROOT/deploy/local/carbon/storage-schemas.conf" "$ROOT/deploy/local/carbon/storage-aggregation.conf" \
		"$ROOT/deploy/local/graphite/dashboard-fix.js" "$conf/"
	build "$GRAPHITE" "$ctx"
}

base
golang
build "$DISTROLESS" "$(context distroless)"
programs
ctx=$(context envconsul) && cp "$work/bin/envconsul" "$ctx/" && build "$ENVCONSUL" "$ctx"
ctx=$(context kafka) && cp "$work/bin/kafka" "$ctx/" && build "$KAFKA" "$ctx"
build "$POSTGRES" "$(context postgres)"
graphite
[[ -x $ROOT/bin/consul ]] || { echo "bin/consul is missing: make consul" >&2; exit 1; }
ctx=$(context consul) && cp "$ROOT/bin/consul" "$ctx/" && build "$CONSUL" "$ctx"
echo "stand-ins built; for the image of the servers, without HashiCorp's releases:"
echo "  GEO_SEARCH_ENVCONSUL_FROM=$ENVCONSUL"
