// Package observe holds the Prometheus series that watch Tally's clients
// rather than its domain: Cassandra statement latency and LWT contention
// (a gocql observer), Redis errors and pool use (a go-redis hook and a
// collector over PoolStats), Kafka client errors (collectors over
// kafka-go's writer and reader stats), the dead-letter topic's depth and
// the polls receiving votes. Domain series (vote outcomes, consumer lag,
// drift, WebSocket subscribers, HTTP) stay with the package that decides
// them; docs/operations.md lists them all.
//
// Every label here is bounded: statement kinds and table names come from
// Tally's own schema, error kinds from a fixed list, Kafka clients by
// role (votes, dlq, reconcile).
package observe
