#!/usr/bin/env bash
# Installs what the tests and the local stack need beyond Go: the PostgreSQL
# server and PostGIS, from Debian's packages. Without root it prints the
# command to run and fails.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
packages=()
[[ -x "/usr/lib/postgresql/${PG_MAJOR}/bin/postgres" ]] || packages+=("postgresql-${PG_MAJOR}")
[[ -f "/usr/share/postgresql/${PG_MAJOR}/extension/postgis.control" ]] || packages+=("postgresql-${PG_MAJOR}-postgis-3")

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
