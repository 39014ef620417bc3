package main

import "github.com/tally-vote/tally/pkg/cassandra"

// The checker reads the votes table with cassandra.ScanVotes: a parallel,
// paged token-range scan, the way an offline audit reads a big table.
type (
	voteRow     = cassandra.VoteRow
	scanOptions = cassandra.ScanOptions
)

var scanVotes = cassandra.ScanVotes
