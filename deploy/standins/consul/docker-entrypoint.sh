#!/bin/sh
# The hashicorp/consul image's entrypoint conventions, from its
# documentation: CONSUL_BIND_INTERFACE and CONSUL_CLIENT_INTERFACE name
# interfaces whose address becomes -bind and -client; CONSUL_LOCAL_CONFIG is
# JSON written into the config directory; "agent" runs the agent on
# /consul/data and /consul/config as the consul user.
set -e
CONSUL_DATA_DIR=/consul/data
CONSUL_CONFIG_DIR=/consul/config

address_of() {
	ip -o -4 addr show dev "$1" 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}'
}
CONSUL_BIND=
if [ -n "$CONSUL_BIND_INTERFACE" ]; then
	a=$(address_of "$CONSUL_BIND_INTERFACE")
	[ -n "$a" ] || { echo "no IPv4 address on $CONSUL_BIND_INTERFACE" >&2; exit 1; }
	CONSUL_BIND="-bind=$a"
fi
CONSUL_CLIENT=
if [ -n "$CONSUL_CLIENT_INTERFACE" ]; then
	a=$(address_of "$CONSUL_CLIENT_INTERFACE")
	[ -n "$a" ] || { echo "no IPv4 address on $CONSUL_CLIENT_INTERFACE" >&2; exit 1; }
	CONSUL_CLIENT="-client=$a"
fi
if [ -n "$CONSUL_LOCAL_CONFIG" ]; then
	echo "$CONSUL_LOCAL_CONFIG" >"$CONSUL_CONFIG_DIR/local.json"
fi

# An option first: the agent's.
case "$1" in -*) set -- consul agent "$@" ;; esac

if [ "$1" = agent ]; then
	shift
	set -- consul agent -data-dir="$CONSUL_DATA_DIR" -config-dir="$CONSUL_CONFIG_DIR" $CONSUL_BIND $CONSUL_CLIENT "$@"
elif [ "$1" = version ] || consul --help 2>&1 | grep -q "^    $1 "; then
	set -- consul "$@"
fi

if [ "$1" = consul ] && [ "$(id -u)" = 0 ] && [ -z "$SKIP_CHOWN" ]; then
	# The data directory may be a fresh volume owned by root.
	if [ "$(stat -c %u "$CONSUL_DATA_DIR")" != "$(id -u consul)" ]; then
		chown consul:consul "$CONSUL_DATA_DIR"
	fi
	exec setpriv --reuid=consul --regid=consul --init-groups "$@"
fi
exec "$@"
