package daemon_test

import (
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rap-fabric/core/internal/authtest"
)

// seriesNames returns the metric names a PromQL expression selects.
func seriesNames(t *testing.T, p parser.Parser, expr string) []string {
	t.Helper()
	e, err := p.ParseExpr(expr)
	require.NoError(t, err, expr)
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			require.NotEmpty(t, vs.Name, "%s: select series by name", expr)
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// TestMonitoringDocsParse: docs/monitoring/alerts.yml is a valid Prometheus
// rule file (Prometheus' own parser: YAML fields, PromQL, templates), has the
// alerts an operator needs, and every series it names is exported by a real
// authority (or, for rap_agent_*, by the agent's collector);
// docs/monitoring/prometheus.yml is a scrape configuration that loads those
// rules and scrapes authorities and agents.
func TestMonitoringDocsParse(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.ParseFile("../docs/monitoring/alerts.yml", false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	alerts := map[string]bool{}
	wanted := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "only alerting rules here")
			alerts[r.Alert] = true
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], r.Alert)
			for _, n := range seriesNames(t, p, r.Expr) {
				wanted[n] = true
			}
		}
	}
	for _, a := range []string{"RapQuorumLost", "RapLeaderFlapping", "RapNodesStale", "RapCertificateExpiring", "RapSnapshotLag"} {
		require.True(t, alerts[a], "alert %s", a)
	}

	// Every series named is exported: the authority's from a live scrape
	// after a cluster with an enrolled node exists, the agent's from its
	// collector's source.
	agentSrc, err := os.ReadFile("../agent/runtime/metrics.go")
	require.NoError(t, err)
	agentNames := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(rap_agent_[a-z_]+)"`).FindAllStringSubmatch(string(agentSrc), -1) {
		agentNames[m[1]] = true
	}
	g := authtest.NewWithConfig(t, 1, metricsConfig)
	l := g.Leader(10 * time.Second)
	newAPIEnvIn(t, g)
	var missing []string
	exported := func(s scrapeResult, n string) bool {
		if strings.HasPrefix(n, "rap_agent_") {
			return agentNames[n]
		}
		for _, suffix := range []string{"", "_count", "_sum", "_bucket"} {
			if base, ok := strings.CutSuffix(n, suffix); ok {
				if _, ok := s[base]; ok {
					return true
				}
			}
		}
		return false
	}
	g.Eventually(15*time.Second, "every series the alerts name is exported", func() bool {
		s := scrape(t, l)
		missing = missing[:0]
		for n := range wanted {
			if !exported(s, n) {
				missing = append(missing, n)
			}
		}
		return len(missing) == 0
	})
	sort.Strings(missing)
	require.Empty(t, missing)

	// The scrape configuration.
	data, err := os.ReadFile("../docs/monitoring/prometheus.yml")
	require.NoError(t, err)
	var cfg struct {
		Global        map[string]string `yaml:"global"`
		RuleFiles     []string          `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	require.NoError(t, dec.Decode(&cfg))
	require.Equal(t, []string{"alerts.yml"}, cfg.RuleFiles)
	_, err = model.ParseDuration(cfg.Global["scrape_interval"])
	require.NoError(t, err)
	jobs := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			jobs[sc.JobName] = append(jobs[sc.JobName], st.Targets...)
		}
	}
	require.Equal(t, []string{"127.0.0.1:9464"}, jobs["rap-authority"], "the default --metrics-listen")
	require.NotEmpty(t, jobs["rap-node-agent"])
	require.NotEmpty(t, jobs["rap-authority-remote"])
}
