#!/bin/sh
# The real script's health-check use: --bootstrap-server HOST:PORT, exit 0
# when the broker answers ApiVersions.
exec /opt/kafka/bin/kafka-standin probe "$@"
