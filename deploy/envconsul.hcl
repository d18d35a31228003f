# envconsul runs search-server with its configuration from Consul KV:
#
#   envconsul -config deploy/envconsul.hcl
#
# Every key under search-service/config/ becomes an environment variable,
# upper-cased (log_level -> LOG_LEVEL), and when a key changes envconsul
# restarts the server: SIGTERM, wait for it to exit (the server's own
# shutdown takes at most SHUTDOWN_TIMEOUT + LOG_FLUSH_TIMEOUT, well under
# kill_timeout), start it again. Restart instances in turn (splay spreads
# them) and clients see no failed call.
#
# The server can also watch the same keys itself and apply the live ones
# without restarting (CONFIG_CONSUL_PREFIX); see the README.

consul {
  # The agent's address and token come from CONSUL_HTTP_ADDR and
  # CONSUL_HTTP_TOKEN (default 127.0.0.1:8500), which the server reads too.
  retry {
    enabled     = true
    attempts    = 0 # forever: Consul being away is no reason to stop serving
    backoff     = "250ms"
    max_backoff = "30s"
  }
}

prefix {
  path      = "search-service/config"
  no_prefix = true # LOG_LEVEL, not SEARCH_SERVICE_CONFIG_LOG_LEVEL
}

upcase   = true
sanitize = true
pristine = false # keep the container's own environment (DATABASE_URL etc.)

# What envconsul itself does on SIGTERM/SIGINT from its supervisor: pass the
# signal on to the server.
kill_signal = "SIGTERM"

exec {
  command = ["/usr/local/bin/search-server"]

  # A random delay before each restart, so that instances watching the same
  # keys restart in turn, not all at once.
  splay = "10s"

  kill_signal  = "SIGTERM"
  kill_timeout = "30s"
}
