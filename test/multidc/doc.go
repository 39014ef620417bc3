// Package multidc holds the cross-region tests that run against the local
// two-DC Cassandra cluster (deploy/local/multidc) with two real `tally serve`
// processes, one per region. They carry the build tag multidc and run with
// `make test-multidc`; docs/multi-region.md explains what they prove.
package multidc
