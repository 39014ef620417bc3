package deploy

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestCompose2DCParses keeps docker-compose.2dc.yml honest: it parses (with
// its merge keys resolved), and each region's Tally services name their own
// local DC, Kafka and Redis, share the keyspace and JWT secret, and apply
// ballots at SERIAL by default (docs/multi-region.md).
func TestCompose2DCParses(t *testing.T) {
	b, err := os.ReadFile("../docker-compose.2dc.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Environment map[string]any `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docker-compose.2dc.yml does not parse: %v", err)
	}
	for _, name := range []string{"cassandra-dc1", "cassandra-dc2", "kafka-a", "kafka-b", "redis-a", "redis-b",
		"migrate", "api-a", "worker-a", "api-b", "worker-b"} {
		if _, ok := doc.Services[name]; !ok {
			t.Errorf("service %q missing", name)
		}
	}
	if dc := doc.Services["cassandra-dc2"].Environment["CASSANDRA_DC"]; dc != "dc2" {
		t.Errorf("cassandra-dc2 is in DC %v", dc)
	}
	tests := []struct{ service, dc, kafka, redis string }{
		{"migrate", "dc1", "kafka-a:9092", "redis-a:6379"},
		{"api-a", "dc1", "kafka-a:9092", "redis-a:6379"},
		{"worker-a", "dc1", "kafka-a:9092", "redis-a:6379"},
		{"api-b", "dc2", "kafka-b:9092", "redis-b:6379"},
		{"worker-b", "dc2", "kafka-b:9092", "redis-b:6379"},
	}
	for _, tc := range tests {
		t.Run(tc.service, func(t *testing.T) {
			env := doc.Services[tc.service].Environment
			str := func(k string) string { s, _ := env[k].(string); return s }
			if got := str("TALLY_CASSANDRA_LOCAL_DC"); got != tc.dc {
				t.Errorf("local DC %q, want %q", got, tc.dc)
			}
			if got := str("TALLY_KAFKA_BROKERS"); got != tc.kafka {
				t.Errorf("kafka %q, want %q", got, tc.kafka)
			}
			if got := str("TALLY_REDIS_ADDR"); got != tc.redis {
				t.Errorf("redis %q, want %q", got, tc.redis)
			}
			if got := str("TALLY_CASSANDRA_SERIAL_CONSISTENCY"); !strings.HasSuffix(got, ":-SERIAL}") {
				t.Errorf("serial consistency %q should default to SERIAL", got)
			}
			if got := str("TALLY_CASSANDRA_REPLICATION"); !strings.Contains(got, "'dc1'") || !strings.Contains(got, "'dc2'") {
				t.Errorf("replication %q should place replicas in both DCs", got)
			}
			if str("TALLY_JWT_SECRET") == "" || str("TALLY_RECEIPT_KEYS") == "" || str("TALLY_CASSANDRA_KEYSPACE") != "tally" {
				t.Errorf("regions must share the JWT secret, the receipt key and the keyspace")
			}
		})
	}
}
