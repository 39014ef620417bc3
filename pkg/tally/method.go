package tally

import (
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// carriesCount reports whether p's exact results need more than totals per
// option: the winner of a ranked or Schulze poll is not the option with
// the most selections, so tally=final carries the method's whole count
// (rounds, or the pairwise matrices).
func carriesCount(p *poll.Poll) bool {
	m := p.Settings.CountingMethod()
	return m.Ordered() || m == count.Score
}

// MethodCount counts ballots (option ids in the voter's order, as the rows
// keep them) under p's counting method. The options are in display order
// and the lot is seeded with the poll id, so the same rows always give the
// same result: a frozen poll's rows never change, hence neither does its
// count.
func MethodCount(p *poll.Poll, ballots [][]id.ID) count.Result {
	return MethodCountScored(p, ballots, nil)
}

// MethodCountScored is MethodCount with the ballots' scores (scores[i][j]
// for ballots[i][j]), which a score poll counts.
func MethodCountScored(p *poll.Poll, ballots [][]id.ID, scores [][]int) count.Result {
	c := count.Contest{Options: make([]string, len(p.Options)), Seed: p.ID.String()}
	for i, o := range p.Options {
		c.Options[i] = o.ID.String()
	}
	bs := make([]count.Ballot, len(ballots))
	ids := make([]string, 0, countOptions(ballots))
	for i, b := range ballots {
		start := len(ids)
		for _, o := range b {
			ids = append(ids, o.String())
		}
		bs[i].OptionIDs = ids[start:len(ids):len(ids)]
		if i < len(scores) && len(scores[i]) == len(b) {
			bs[i].Scores = make(map[string]int, len(b))
			for j, o := range bs[i].OptionIDs {
				bs[i].Scores[o] = scores[i][j]
			}
		}
	}
	return count.Count(p.Settings.CountingMethod(), c, bs)
}

func countOptions(ballots [][]id.ID) int {
	n := 0
	for _, b := range ballots {
		n += len(b)
	}
	return n
}
