// Package deploy holds deployment files; this test keeps docker-compose.yml
// honest on machines without a Docker engine (deploy/composecheck loads it
// with the Compose Specification loader as well).
package deploy

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestComposeParses(t *testing.T) {
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image       string         `yaml:"image"`
			Command     []string       `yaml:"command"`
			Environment map[string]any `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	for _, name := range []string{"cassandra-1", "cassandra-2", "cassandra-3", "kafka-1", "kafka-2", "kafka-3", "redis",
		"migrate", "api", "worker", "prometheus", "grafana"} {
		if _, ok := doc.Services[name]; !ok {
			t.Errorf("service %q missing", name)
		}
	}
	for _, name := range []string{"api", "worker", "migrate"} {
		env := doc.Services[name].Environment
		for _, k := range []string{"TALLY_CASSANDRA_HOSTS", "TALLY_KAFKA_BROKERS", "TALLY_REDIS_ADDR", "TALLY_JWT_SECRET", "TALLY_RECEIPT_KEYS"} {
			if _, ok := env[k]; !ok {
				t.Errorf("service %q lacks %s", name, k)
			}
		}
		if hosts, _ := env["TALLY_CASSANDRA_HOSTS"].(string); strings.Count(hosts, ",") != 2 {
			t.Errorf("service %q should list 3 cassandra hosts, got %q", name, hosts)
		}
	}
}
