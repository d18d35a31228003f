# envconsul runs search-server with its configuration from Consul KV:
#
#   envconsul -config deploy/envconsul.hcl
#
# Every key under search-service/config/ becomes an environment variable,
# upper-cased (log_level -> LOG_LEVEL), and when a key changes envconsul
# restarts the server: SIGTERM, wait for it to exit, start it again with the
# new environment.
#
# Every instance's envconsul watches the same keys, so every instance is
# told to restart at the same moment. Three things keep clients from
# noticing (README, "Restarts under envconsul"; docs/RELIABILITY.md):
#
#   - the handover: a server told to stop keeps serving until it holds the
#     service's Consul lock (search-service/handover/lock, outside the
#     watched prefix on purpose) and another instance is passing, so
#     instances leave one at a time, each after its replacement or a peer
#     is up; bounded by CONSUL_HANDOVER_TIMEOUT (10s);
#   - clients wait for a ready instance within their deadline instead of
#     failing while discovery briefly names nobody (waitForReady; the CLI
#     waits for Consul DNS to list an instance);
#   - the splay below spreads the restarts at random, so the handover
#     rarely has to make anyone wait.
#
# A value that is invalid (a typo in the Consul UI) does not stop the
# server: a tunable falls back to its default, loudly (ERROR log,
# config.rejected metrics, Monitor, `search-server config`). Only an
# invalid essential setting (DATABASE_URL, LISTEN_ADDR, TLS files, tokens,
# ...) stops it, with status 2, and envconsul exits with it.
#
# The server can also watch the same keys itself and apply the live ones
# without restarting (CONFIG_CONSUL_PREFIX). They are alternatives for one
# prefix: use one or the other. With both, every change still restarts the
# server (envconsul) and the watch applies nothing: every key in the prefix
# is also an environment variable, which wins over KV, so the watch logs
# each change as ignored.

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
  # keys seldom restart at once (the handover covers the times they do).
  splay = "10s"

  # The server's longest shutdown: CONSUL_HANDOVER_TIMEOUT (10s) +
  # SHUTDOWN_TIMEOUT (15s) + LOG_FLUSH_TIMEOUT (5s) + deregistration (at
  # most 5s) = 35s; kill_timeout must exceed it, or SIGKILL cuts the drain.
  kill_signal  = "SIGTERM"
  kill_timeout = "40s"
}
