// Package id is Tally's identifier type, so packages that only pass ids
// along (the HTTP layer) need not import the Cassandra driver. An ID is a
// UUID; it is the driver's type, which every store reads and writes as is.
package id

import "github.com/gocql/gocql"

// ID identifies a user, poll, option, vote or request.
type ID = gocql.UUID

// Parse reads the canonical text form of an ID.
func Parse(s string) (ID, error) { return gocql.ParseUUID(s) }
