// Package composecheck loads Tally's compose files with the Compose
// Specification's own Go loader (the library behind `docker compose
// config`): schema validation, interpolation, merge keys and the
// consistency checks (services, volumes and depends_on resolve). There is
// no Docker engine on the machines that run `make check-ops`, so this is
// as close to `docker compose config` as they get; images are not pulled
// and nothing is started.
package composecheck

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

const root = "../.."

func load(t *testing.T, file string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, file)},
		cli.WithWorkingDirectory(root), cli.WithName("tally"),
		// The only variables the files require; everything else has a default.
		cli.WithEnv([]string{"TALLY_JWT_SECRET=0123456789abcdef0123456789abcdef",
			"TALLY_RECEIPT_KEYS=nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="}),
		cli.WithConsistency(true), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("%s does not load as a Compose project: %v", file, err)
	}
	// Bind mounts must name files of the repository (compose itself
	// would create a missing one as an empty directory).
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: service %s mounts %s: %v", file, s.Name, v.Source, err)
			}
		}
	}
	return p
}

func env(t *testing.T, p *types.Project, service, key string) string {
	t.Helper()
	s, ok := p.Services[service]
	if !ok {
		t.Fatalf("service %s missing", service)
	}
	v := s.Environment[key]
	if v == nil {
		t.Errorf("service %s lacks %s", service, key)
		return ""
	}
	return *v
}

func TestProductionComposeLoads(t *testing.T) {
	p := load(t, "docker-compose.yml")

	redis := p.Services["redis"]
	cmd := strings.Join(redis.Command, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync everysec"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redis command %q lacks %s", cmd, want)
		}
	}
	if !slices.ContainsFunc(redis.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/data" && v.Type == types.VolumeTypeVolume }) {
		t.Error("redis keeps its append-only file in no named volume at /data")
	}

	brokers := []string{"kafka-1", "kafka-2", "kafka-3"}
	ids := map[string]bool{}
	for _, b := range brokers {
		for k, want := range map[string]string{
			"KAFKA_PROCESS_ROLES":                            "broker,controller",
			"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093",
			"KAFKA_DEFAULT_REPLICATION_FACTOR":               "3",
			"KAFKA_MIN_INSYNC_REPLICAS":                      "2",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "3",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "2",
			"KAFKA_ADVERTISED_LISTENERS":                     "PLAINTEXT://" + b + ":9092",
			"CLUSTER_ID":                                     env(t, p, "kafka-1", "CLUSTER_ID"),
		} {
			if got := env(t, p, b, k); got != want {
				t.Errorf("%s: %s = %q, want %q", b, k, got, want)
			}
		}
		ids[env(t, p, b, "KAFKA_NODE_ID")] = true
		if len(p.Services[b].Volumes) == 0 {
			t.Errorf("%s keeps its log in no volume", b)
		}
	}
	if len(ids) != 3 {
		t.Errorf("broker node ids %v are not three distinct ids", ids)
	}

	for _, s := range []string{"migrate", "api", "worker"} {
		if got := env(t, p, s, "TALLY_KAFKA_BROKERS"); got != "kafka-1:9092,kafka-2:9092,kafka-3:9092" {
			t.Errorf("%s: TALLY_KAFKA_BROKERS = %q", s, got)
		}
		if got := env(t, p, s, "TALLY_KAFKA_REPLICATION_FACTOR"); got != "3" {
			t.Errorf("%s: TALLY_KAFKA_REPLICATION_FACTOR = %q, want 3", s, got)
		}
		if got := env(t, p, s, "TALLY_ENV"); got != "production" {
			t.Errorf("%s: TALLY_ENV = %q", s, got)
		}
	}
	for _, s := range []string{"api", "worker"} {
		for _, b := range brokers {
			if _, ok := p.Services[s].DependsOn[b]; !ok {
				t.Errorf("%s does not wait for %s", s, b)
			}
		}
	}

	mounts := func(service string) map[string]string {
		out := map[string]string{}
		for _, v := range p.Services[service].Volumes {
			if v.Type == types.VolumeTypeBind {
				rel, _ := filepath.Rel(mustAbs(t, root), v.Source)
				out[v.Target] = rel
			}
		}
		return out
	}
	prom := mounts("prometheus")
	if prom["/etc/prometheus/rules/tally-rules.yml"] != "deploy/prometheus/tally-rules.yml" ||
		prom["/etc/prometheus/prometheus.yml"] != "deploy/prometheus/compose-prometheus.yml" {
		t.Errorf("prometheus mounts %v, want the project's rules and compose-prometheus.yml", prom)
	}
	graf := mounts("grafana")
	if graf["/var/lib/grafana/dashboards/tally-dashboard.json"] != "deploy/grafana/tally-dashboard.json" ||
		graf["/etc/grafana/provisioning"] != "deploy/grafana/provisioning" {
		t.Errorf("grafana mounts %v, want the dashboard and deploy/grafana/provisioning", graf)
	}
	checkPrometheusConfig(t, p)
}

// checkPrometheusConfig: the compose Prometheus loads the rules where they
// are mounted and scrapes the API and the worker on the ports they listen on.
func checkPrometheusConfig(t *testing.T, p *types.Project) {
	b, err := os.ReadFile(filepath.Join(root, "deploy/prometheus/compose-prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg.RuleFiles, "/etc/prometheus/rules/tally-rules.yml") {
		t.Errorf("rule_files %v miss the mounted rules", cfg.RuleFiles)
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	port := func(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
	for service, key := range map[string]string{"api": "TALLY_HTTP_ADDR", "worker": "TALLY_WORKER_ADDR"} {
		want := service + ":" + port(env(t, p, service, key))
		if !slices.Contains(targets, want) {
			t.Errorf("prometheus scrapes %v, not %s", targets, want)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestTwoRegionComposeLoads: the two-region file passes the same loader
// (its semantics are deploy/compose2dc_test.go's).
func TestTwoRegionComposeLoads(t *testing.T) {
	p := load(t, "docker-compose.2dc.yml")
	if len(p.Services) < 11 {
		t.Errorf("docker-compose.2dc.yml loads %d services", len(p.Services))
	}
}
