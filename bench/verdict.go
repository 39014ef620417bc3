package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/tally-vote/tally/pkg/id"
)

// verdict is the correctness check every run ends with. A run whose verdict
// fails is a failed run, whatever its speed.
type verdict struct {
	OK             bool `json:"ok"`
	UniqueAccepted int  `json:"unique_accepted_voters"`
	Rows           int  `json:"rows"`
	Missing        int  `json:"accepted_but_missing"`
	Unexpected     int  `json:"rows_never_accepted"`
	// ShedRecorded are rows of votes answered 503 "may still be recorded"
	// whose retry with the same Idempotency-Key then answered 2xx with the
	// same request: the outcome the 503 announced, not a fault.
	ShedRecorded    int      `json:"shed_then_recorded_confirmed_by_retry"`
	RetryMismatches int64    `json:"same_key_retries_with_other_request_id"`
	PollsChecked    int      `json:"polls_final_checked"`
	FinalMismatches int      `json:"polls_final_not_equal_rows"`
	Problems        []string `json:"problems,omitempty"`
}

func (v verdict) String() string {
	state := "PASS"
	if !v.OK {
		state = "FAIL " + strings.Join(v.Problems, "; ")
	}
	return fmt.Sprintf("%s — rows %d == unique accepted %d + shed-then-recorded %d (each confirmed by a same-key retry), missing %d, unexpected %d, same-key retry mismatches %d, final==rows on %d/%d polls",
		state, v.Rows, v.UniqueAccepted, v.ShedRecorded, v.Missing, v.Unexpected, v.RetryMismatches, v.PollsChecked-v.FinalMismatches, v.PollsChecked)
}

type pv struct{ poll, voter id.ID }

// verdict compares what the API accepted with the rows Cassandra holds, read
// directly from the votes table, and with tally=final.
func (b *bench) verdict(ctx context.Context, url string, polls []pollInfo, accepted []cast, maybe []cast, mismatches int64) verdict {
	v := verdict{RetryMismatches: mismatches}
	want := map[pv]bool{}
	for _, a := range accepted {
		want[pv{a.poll, a.voter}] = true
	}
	shed := map[pv]cast{}
	for _, s := range maybe {
		if !want[pv{s.poll, s.voter}] {
			shed[pv{s.poll, s.voter}] = s
		}
	}
	v.UniqueAccepted = len(want)
	ours := map[id.ID]int{}
	for i, p := range polls {
		ours[p.id] = i
	}
	perPoll := make([]map[string]int64, len(polls))
	ballots := make([]int64, len(polls))
	for i := range perPoll {
		perPoll[i] = map[string]int64{}
	}
	iter := b.cql.Session.Query(`SELECT poll_id, voter_id, option_ids FROM votes`).WithContext(ctx).PageSize(5000).Iter()
	var (
		p, voter id.ID
		opts     []id.ID
	)
	seen := map[pv]bool{}
	for iter.Scan(&p, &voter, &opts) {
		i, ok := ours[p]
		if !ok {
			continue
		}
		v.Rows++
		k := pv{p, voter}
		seen[k] = true
		if !want[k] {
			if s, ok := shed[k]; ok && b.retryConfirms(url, polls, s) {
				v.ShedRecorded++
			} else {
				v.Unexpected++
			}
		}
		ballots[i]++
		for _, o := range opts {
			perPoll[i][o.String()]++
		}
		opts = nil
	}
	if err := iter.Close(); err != nil {
		v.Problems = append(v.Problems, "scan votes: "+err.Error())
	}
	for k := range want {
		if !seen[k] {
			v.Missing++
		}
	}
	// tally=final for up to 100 polls (all of them on small runs).
	for i, pl := range polls {
		if i >= 100 {
			break
		}
		v.PollsChecked++
		st, m := b.do("GET", url+"/v1/polls/"+pl.id.String()+"/results?tally=final", pl.owner, nil, "")
		if st != http.StatusOK {
			v.FinalMismatches++
			continue
		}
		total, _ := m["total_votes"].(float64)
		bad := int64(total) != ballots[i]
		for _, o := range m["options"].([]any) {
			om := o.(map[string]any)
			n, _ := om["votes"].(float64)
			if int64(n) != perPoll[i][om["option_id"].(string)] {
				bad = true
			}
		}
		if bad {
			v.FinalMismatches++
		}
	}
	if v.Rows != v.UniqueAccepted+v.ShedRecorded {
		v.Problems = append(v.Problems, fmt.Sprintf("rows %d != unique accepted %d + shed-then-recorded %d", v.Rows, v.UniqueAccepted, v.ShedRecorded))
	}
	if v.Missing > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d accepted votes lost", v.Missing))
	}
	if v.Unexpected > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d rows that were never accepted", v.Unexpected))
	}
	if v.RetryMismatches > 0 {
		v.Problems = append(v.Problems, "same-key retries got a different request id")
	}
	if v.FinalMismatches > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("final != rows on %d polls", v.FinalMismatches))
	}
	v.OK = len(v.Problems) == 0
	return v
}

// retryConfirms resubmits a shed vote with its Idempotency-Key, as the 503
// told the client to: a recorded vote must answer 2xx (its original
// outcome), never a second ballot.
func (b *bench) retryConfirms(url string, polls []pollInfo, s cast) bool {
	opts := polls[s.pollIdx].options
	body := []byte(`{"option_id":"` + opts[int(s.voter[0])%len(opts)] + `"}`)
	st, _ := b.do("POST", url+"/v1/polls/"+s.poll.String()+"/votes", b.mint(s.voter), body, s.key)
	return st == http.StatusOK || st == http.StatusAccepted
}
