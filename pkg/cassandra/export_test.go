package cassandra

import "github.com/scylladb/gocqlx/v2/table"

// TableMetadata exposes the table metadata to the external tests, which
// check it against the migrated schema.
func TableMetadata() []table.Metadata {
	out := make([]table.Metadata, len(allTables))
	for i, t := range allTables {
		out[i] = t.Metadata()
	}
	return out
}
