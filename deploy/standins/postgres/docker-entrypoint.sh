#!/usr/bin/env bash
# The postgres image's documented interface: POSTGRES_PASSWORD (required
# unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER (default postgres),
# POSTGRES_DB (default POSTGRES_USER), POSTGRES_INITDB_ARGS,
# POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), PGDATA; on an empty data
# directory: initdb, then a temporary server on the Unix socket only
# (listen_addresses='') that runs /docker-entrypoint-initdb.d/*.sh, *.sql and
# *.sql.gz, then the server proper. Options first (`-c x=y`) go to postgres.
# Runs as root only to fix the data directory's owner, then as postgres.
set -Eeuo pipefail

if [[ ${1:-} == -* ]]; then
	set -- postgres "$@"
fi

if [[ ${1:-} != postgres ]]; then
	exec "$@"
fi

if [[ $(id -u) == 0 ]]; then
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA"
	find "$PGDATA" \! -user postgres -exec chown postgres: '{}' +
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}" "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
	if [[ -z ${POSTGRES_PASSWORD:-} && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
		echo "Error: Database is uninitialized and superuser password is not specified." >&2
		echo "       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)." >&2
		exit 1
	fi
	pwfile=$(mktemp)
	printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words
	initdb --username="$POSTGRES_USER" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-} >/dev/null
	rm -f "$pwfile"
	printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
	echo "listen_addresses = '*'" >>"$PGDATA/postgresql.auto.conf"

	PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start >/dev/null
	export PGPASSWORD=${POSTGRES_PASSWORD:-}
	psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [[ $POSTGRES_DB != postgres ]] && ! "${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = :'db'" -v db="$POSTGRES_DB" | grep -q 1; then
		"${psql[@]}" -d postgres -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sh) echo "running $f"; if [[ -x $f ]]; then "$f"; else . "$f"; fi ;;
		*.sql) echo "running $f"; "${psql[@]}" -d "$POSTGRES_DB" -f "$f" ;;
		*.sql.gz) echo "running $f"; gunzip -c "$f" | "${psql[@]}" -d "$POSTGRES_DB" ;;
		*) ;;
		esac
	done
	unset PGPASSWORD
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
