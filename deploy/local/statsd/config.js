// StatsD configuration of the local stack: as in graphiteapp/graphite-statsd
// (graphite backend, legacy namespace: counter x lands as stats.x and
// stats_counts.x), flushing every 10 s as it does: one flush per 10 s
// whisper slot (storage-schemas.conf), since a faster flush would overwrite
// the slot's earlier counts. Carbon listens on 127.0.0.1:2003.
{
  port: 8125,
  address: "127.0.0.1",
  mgmt_address: "127.0.0.1",
  mgmt_port: 8126,
  graphiteHost: "127.0.0.1",
  graphitePort: 2003,
  flushInterval: 10000,
  backends: ["./backends/graphite"]
}
