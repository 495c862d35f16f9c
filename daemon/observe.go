package daemon

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/loopback"
	"github.com/rap-fabric/core/promsink"
)

// newRegistry is the authority's metrics registry: Go runtime, process and
// build information, the go-metrics bridge (Raft internals), and the
// authority's own and PostgreSQL-derived series. httpapi adds its request
// series; registerMetrics the Raft and epoch gauges.
func newRegistry(auth *authority.Authority) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(), promsink.Install())
	reg.MustRegister(auth.Collectors()...)
	return reg
}

// observers are the loopback-only listeners for operators: Prometheus
// metrics and pprof.
type observers struct {
	metrics, debug *loopback.Server
}

// validateObserve refuses a metrics or pprof listener off the loopback
// interface (a *authority.ConfigError naming MetricsListen or DebugListen).
func (c Config) validateObserve() error {
	if c.MetricsListen != "" {
		if err := loopback.Check(c.MetricsListen); err != nil {
			return &authority.ConfigError{Field: "MetricsListen", Reason: err.Error()}
		}
	}
	if c.DebugListen != "" {
		if err := loopback.Check(c.DebugListen); err != nil {
			return &authority.ConfigError{Field: "DebugListen", Reason: err.Error()}
		}
	}
	return nil
}

func (o *observers) start(cfg Config, metrics http.Handler) error {
	if cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics)
		s, err := loopback.Listen(cfg.MetricsListen, mux)
		if err != nil {
			return fmt.Errorf("daemon: metrics listen: %w", err)
		}
		o.metrics = s
	}
	if cfg.DebugListen != "" {
		s, err := loopback.Listen(cfg.DebugListen, loopback.Pprof())
		if err != nil {
			o.close()
			return fmt.Errorf("daemon: debug listen: %w", err)
		}
		o.debug = s
	}
	return nil
}

func (o *observers) close() {
	for _, s := range []**loopback.Server{&o.metrics, &o.debug} {
		if *s != nil {
			_ = (*s).Close()
			*s = nil
		}
	}
}

// MetricsAddr returns the metrics listener's address ("" when none runs).
func (d *Daemon) MetricsAddr() string {
	if d.obs.metrics == nil {
		return ""
	}
	return d.obs.metrics.Addr()
}

// DebugAddr returns the pprof listener's address ("" when none runs).
func (d *Daemon) DebugAddr() string {
	if d.obs.debug == nil {
		return ""
	}
	return d.obs.debug.Addr()
}
