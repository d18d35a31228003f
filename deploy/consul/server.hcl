# The Consul agent of docker-compose.yml: a single server with the UI, its
# HTTP API and DNS reachable by the other containers (client_addr 0.0.0.0
# inside the compose network; only the UI/API and DNS ports are published).
# A fixed node name: the default, the container's hostname, changes each
# time the container is recreated, leaving a dead node in the catalog.
node_name        = "consul"
server           = true
bootstrap_expect = 1
ui_config {
  enabled = true
}
data_dir    = "/consul/data"
client_addr = "0.0.0.0"
ports {
  http = 8500
  dns  = 8600
  grpc = 8502
}
# Answer only passing instances, at once (search-client re-resolves).
dns_config {
  only_passing = true
  service_ttl {
    "*" = "0s"
  }
}
log_level = "INFO"
