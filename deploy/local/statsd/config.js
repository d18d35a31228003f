// StatsD configuration of the local stack: as in graphiteapp/graphite-statsd
// (graphite backend, legacy namespace: counter x lands as stats.x and
// stats_counts.x), but flushing every 2 s instead of 10 s so that a demo
// shows numbers quickly. Carbon listens on 127.0.0.1:2003.
{
  port: 8125,
  address: "127.0.0.1",
  mgmt_address: "127.0.0.1",
  mgmt_port: 8126,
  graphiteHost: "127.0.0.1",
  graphitePort: 2003,
  flushInterval: 2000,
  backends: ["./backends/graphite"]
}
