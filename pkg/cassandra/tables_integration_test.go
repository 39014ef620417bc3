//go:build integration

package cassandra_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestTableMetadataMatchesSchema checks every table's gocqlx metadata
// against the schema the migrations produce: the same tables, columns,
// partition key and clustering key, in key order. A migration that changes a
// table fails here until tables.go follows it.
func TestTableMetadataMatchesSchema(t *testing.T) {
	s, cfg := testenv.Cassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	type column struct {
		name, kind string
		position   int
	}
	schema := map[string][]column{}
	iter := s.Session.Query(`SELECT table_name, column_name, kind, position FROM system_schema.columns WHERE keyspace_name = ?`,
		cfg.Keyspace).WithContext(ctx).Iter()
	var (
		tbl string
		c   column
	)
	for iter.Scan(&tbl, &c.name, &c.kind, &c.position) {
		if tbl != "gocqlx_migrate" {
			schema[tbl] = append(schema[tbl], c)
		}
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("read schema: %v", err)
	}

	seen := map[string]bool{}
	for _, m := range cassandra.TableMetadata() {
		seen[m.Name] = true
		cols, ok := schema[m.Name]
		if !ok {
			t.Errorf("table %s has metadata but is not in the schema", m.Name)
			continue
		}
		var names []string
		part := make([]string, len(m.PartKey))
		sort := make([]string, len(m.SortKey))
		for _, c := range cols {
			names = append(names, c.name)
			switch {
			case c.kind == "partition_key" && c.position < len(part):
				part[c.position] = c.name
			case c.kind == "clustering" && c.position < len(sort):
				sort[c.position] = c.name
			case c.kind == "partition_key" || c.kind == "clustering":
				t.Errorf("table %s: key column %s (%s %d) is missing from the metadata's keys", m.Name, c.name, c.kind, c.position)
			}
		}
		slices.Sort(names)
		want := slices.Clone(m.Columns)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("table %s: schema columns %v, metadata columns %v", m.Name, names, want)
		}
		if !slices.Equal(part, m.PartKey) || !slices.Equal(sort, m.SortKey) {
			t.Errorf("table %s: schema keys (%v, %v), metadata keys (%v, %v)", m.Name, part, sort, m.PartKey, m.SortKey)
		}
	}
	for name := range schema {
		if !seen[name] {
			t.Errorf("table %s is in the schema but has no metadata in tables.go", name)
		}
	}
}
