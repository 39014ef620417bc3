// Package cql holds Tally's Cassandra schema as ordered, versioned migration
// files. Files are named NNN-verb_noun.cql, applied in lexical order by
// `tally migrate`, and never edited once landed: the migrator refuses a file
// whose checksum changed after it was applied.
package cql

import "embed"

// Files is the flat directory of migrations, embedded in the binary.
//
//go:embed *.cql
var Files embed.FS
