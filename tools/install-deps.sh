#!/usr/bin/env bash
# Installs what the tests need beyond Go: the PostgreSQL server and PostGIS,
# from Debian's packages. With the argument "stack", also what the local
# stack adds: Graphite's carbon, whisper tools and web app (graphite-web,
# served by gunicorn, its static files by WhiteNoise; Debian) and the StatsD
# daemon (npm, pinned by deploy/local/statsd/package-lock.json, installed
# into .stack/statsd). With "browser", Debian's chromium and the map test's
# npm packages (playwright-core, leaflet), and GDAL (gdal-bin), the OGC API
# client of the HTTP tests. Without root
# it prints the command to run and fails.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PG_MAJOR="${PG_MAJOR:-15}"
packages=()
[[ -x "/usr/lib/postgresql/${PG_MAJOR}/bin/postgres" ]] || packages+=("postgresql-${PG_MAJOR}")
[[ -f "/usr/share/postgresql/${PG_MAJOR}/extension/postgis.control" ]] || packages+=("postgresql-${PG_MAJOR}-postgis-3")
args=" $* "
if [[ $args == *" stack "* ]]; then
	command -v carbon-cache >/dev/null || packages+=(graphite-carbon)
	command -v whisper-fetch >/dev/null || packages+=(python3-whisper)
	[[ -d /usr/lib/python3/dist-packages/graphite/render ]] || packages+=(graphite-web)
	command -v gunicorn >/dev/null || packages+=(gunicorn)
	/usr/bin/python3 -c 'import whitenoise' 2>/dev/null || packages+=(python3-whitenoise)
	command -v ss >/dev/null || packages+=(iproute2) # deploy/local/stack.sh checks ports with ss
	# Installed under .stack/ (a dot directory, which the go tool skips: the
	# package ships Go example files).
	dest="${STACK_DIR:-$ROOT/.stack}/statsd"
	if ! cmp -s "$ROOT/deploy/local/statsd/package-lock.json" "$dest/package-lock.json" ||
		[[ ! -d "$dest/node_modules/statsd" ]]; then
		command -v npm >/dev/null || { echo "npm is needed for the StatsD daemon: apt-get install -y nodejs npm" >&2; exit 1; }
		echo "installing the StatsD daemon (npm ci into $dest)" >&2
		mkdir -p "$dest"
		cp "$ROOT/deploy/local/statsd/package.json" "$ROOT/deploy/local/statsd/package-lock.json" "$dest/"
		(cd "$dest" && npm ci --no-audit --no-fund --loglevel=error)
	fi
fi
if [[ $args == *" polyglot "* ]]; then
	/usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || packages+=(python3-grpcio python3-protobuf)
	command -v protoc >/dev/null || packages+=(protobuf-compiler)
	command -v grpc_python_plugin >/dev/null || packages+=(protobuf-compiler-grpc)
	if [[ ! -d "$ROOT/examples/node/node_modules/@grpc/grpc-js" ]]; then
		command -v npm >/dev/null || { echo "npm is needed for the Node.js example: apt-get install -y nodejs npm" >&2; exit 1; }
		echo "installing the Node.js example's packages (npm ci in examples/node)" >&2
		(cd "$ROOT/examples/node" && npm ci --no-audit --no-fund --loglevel=error)
	fi
fi

if [[ $args == *" browser "* ]]; then
	# The map page's browser test: Debian's chromium, driven by
	# playwright-core; and the Leaflet package the vendored map assets are
	# checked against (pinned by internal/httpapi/testdata/browser/package-lock.json).
	command -v chromium >/dev/null || packages+=(chromium)
	# GDAL's command-line tools: the OGC API client the HTTP tests copy a
	# collection with (internal/httpapi/gdal_test.go), as GIS users do.
	command -v ogr2ogr >/dev/null || packages+=(gdal-bin)
	dir="$ROOT/internal/httpapi/testdata/browser"
	if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-from-lock.json" 2>/dev/null; then
		command -v npm >/dev/null || { echo "npm is needed for the browser test: apt-get install -y nodejs npm" >&2; exit 1; }
		echo "installing the browser test's packages (npm ci in internal/httpapi/testdata/browser)" >&2
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.installed-from-lock.json)
	fi
fi

if [[ ${#packages[@]} -eq 0 ]]; then
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "missing: ${packages[*]}" >&2
	echo "run: sudo apt-get update && sudo apt-get install -y ${packages[*]}" >&2
	exit 1
fi
echo "installing ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${packages[@]}" >/dev/null
