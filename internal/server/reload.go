package server

import (
	"context"
	"slices"

	"github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/grpcapi"
)

// watchConfig follows the KV prefix until ctx ends. While Consul cannot be
// reached, the last good configuration stays.
func (s *Server) watchConfig(ctx context.Context) {
	client, err := consul.NewClient(s.cfg.Consul)
	if err != nil {
		s.logger.Error("cannot watch configuration in Consul KV", "error", err.Error())
		return
	}
	w := consul.NewKVWatcher(client, s.cfg.ConfigPrefix)
	failing := false
	w.Watch(ctx, func(kv map[string]string, err error) {
		if err != nil {
			if !failing {
				s.logger.Warn("cannot read configuration from Consul KV; keeping the current one and retrying", "error", err.Error())
			}
			failing = true
			return
		}
		if failing {
			s.logger.Info("reading configuration from Consul KV again")
			failing = false
		}
		s.reloader.Update(ctx, kv, s.logger, s.metrics)
		s.publishRejected()
	})
}

// applyLive swaps in cfg's live settings.
func (s *Server) applyLive(cfg Config) {
	s.level.Set(cfg.LogLevel)
	s.api.Apply(cfg.GRPC)
	if s.http != nil {
		s.http.SetLimits(httpLimits(cfg.GRPC))
	}
	s.auth.Set(cfg.GRPC) // the HTTP API shares the tokens
	s.timeout.Set(cfg.DB.StatementTimeout)
	s.writeTimeout.Set(cfg.DB.WriteStatementTimeout)
	s.replica.SetMaxLag(cfg.DB.MaxReplicaLag)
	s.statsd.SetSampleRate(cfg.StatsD.SampleRate)
	s.index.Apply(cfg.Index)
}

// ReportConfig logs what start-up said about the configuration, counts the
// rejected values (config.rejected), keeps them for Monitor and the
// config.rejected_settings gauge, and, with CONFIG_CONSUL_PREFIX, makes Run
// watch the prefix and apply live settings. Call it once, before Run.
func (s *Server) ReportConfig(ctx context.Context, st Startup) {
	for _, n := range st.Notices {
		s.logger.Log(ctx, n.Level, n.Msg, n.Attrs...)
		if n.Rejected {
			s.metrics.Count("config.rejected", 1)
		}
	}
	s.envRejected = st.Rejected
	if st.Reloader != nil {
		s.reloader = st.Reloader
		s.reloader.OnLive(s.applyLive)
	}
	s.publishRejected()
}

// rejected lists the configuration values refused now: the environment's,
// at start, and those of the last KV snapshot.
func (s *Server) rejected() []config.Rejection {
	out := slices.Clone(s.envRejected)
	if s.reloader != nil {
		out = append(out, s.reloader.Rejected()...)
	}
	return out
}

// publishRejected hands the refused values to Monitor.
func (s *Server) publishRejected() {
	var out []grpcapi.RejectedSetting
	for _, r := range s.rejected() {
		out = append(out, grpcapi.RejectedSetting{Variable: r.Var, Key: r.Key, Value: r.Value, Reason: r.Reason})
	}
	s.api.SetRejectedSettings(out)
}
