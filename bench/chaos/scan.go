package main

import (
	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/vote"
)

// The checker reads the votes table with cassandra.ScanVotes: a parallel,
// paged token-range scan, the way an offline audit reads a big table.
type (
	voteRow     = vote.Ballot
	scanOptions = scan.Options
)

var scanVotes = cassandra.ScanVotes
