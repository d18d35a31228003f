#!/usr/bin/env bash
# The three daemons of the graphite-statsd stand-in; the container ends
# (and restarts, by its policy) when one of them does.
set -euo pipefail
mkdir -p /opt/graphite/storage/whisper /opt/graphite/storage/log/webapp /opt/graphite/storage/carbon/log
carbon-cache --config=/opt/graphite/conf/carbon.conf --pidfile=/opt/graphite/storage/carbon/carbon-cache.pid \
	--logdir=/opt/graphite/storage/carbon/log --nodaemon start &
node /opt/statsd/node_modules/statsd/stats.js /opt/statsd/config/udp.js &
gunicorn --bind 0.0.0.0:80 --workers 2 --graceful-timeout 5 "django.core.wsgi:get_wsgi_application()" &
trap 'kill -TERM $(jobs -p) 2>/dev/null; wait' TERM INT
wait -n
echo "a daemon exited: stopping" >&2
kill -TERM $(jobs -p) 2>/dev/null || true
wait
exit 1
