//go:build multidc

package multidc

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/testenv"
)

// TestChangeFromTheOtherRegion (issue 22): ballots cast in one region are
// changed and revoked through the other, through the real HTTP API of two
// real `tally serve` processes, in both modes: async (each region's own
// queue and worker apply the change) and sync (each region's API writes
// it). Every voter then sends two changes at the same moment, one to
// each region: the LWT at SERIAL orders them on the voter's row, so both
// apply one after the other (two versions) or one is refused; never is a
// version written twice or a change lost. (Sync is the tight race: two
// APIs read version 1 and write within milliseconds. With
// TALLY_MULTIDC_SERIAL=LOCAL_SERIAL both apply as version 2 and the sync
// run fails; the async workers rarely meet inside the replication delay.) A third of the voters revoke in
// region a, half of those vote again in region b. At the end the rows,
// the index, the counters and the frozen final agree (tally verify), and
// both regions serve the same live and final results.
func TestChangeFromTheOtherRegion(t *testing.T) {
	for _, mode := range []string{"async", "sync"} {
		t.Run(mode, func(t *testing.T) { changeFromTheOtherRegion(t, mode) })
	}
}

func changeFromTheOtherRegion(t *testing.T, mode string) {
	const voters = 60
	cl := newCluster(t, map[string]string{"TALLY_VOTE_MODE": mode})
	a, b := cl.regions[0], cl.regions[1]
	owner, _ := a.c.Account()
	pollID, opts := a.c.Poll(owner, map[string]any{"allow_anonymous": true, "show_results_during_voting": true,
		"allow_vote_change": true, "max_vote_changes": 10})
	tokens := anonymous(t, a.c, voters)
	base := "/v1/polls/" + pollID + "/votes"

	// Phase 1: every voter votes in region a.
	first := make([]sent, voters)
	for i, tok := range tokens {
		resp, _ := a.vote(t, tok, pollID, opts[0])
		first[i] = accepted(t, resp)
	}
	a.drained(t, 2*time.Minute)
	for i, tok := range tokens {
		cl.completed(t, a, tok, pollID, first[i])
	}

	// Phase 2: every voter changes through region b, whose worker applies
	// the change to a row region a's worker wrote.
	cl.mine(t, tokens, pollID, func(i int, m myVote) error {
		if m.Version != 0 || m.OptionID != opts[0] {
			return fmt.Errorf("voter %d before the change: %+v", i, m)
		}
		return nil
	})
	changed := make([]sent, voters)
	for i, tok := range tokens {
		changed[i] = cl.change(t, b, "PUT", tok, pollID, opts[1], "b-change-1")
		if changed[i].refused() {
			t.Fatalf("voter %d: the change through region b was refused", i)
		}
	}
	b.drained(t, 2*time.Minute)
	for i, tok := range tokens {
		cl.completed(t, b, tok, pollID, changed[i])
	}
	cl.mine(t, tokens, pollID, func(i int, m myVote) error {
		if m.Version != 1 || m.OptionID != opts[1] {
			return fmt.Errorf("voter %d after region b's change: %+v", i, m)
		}
		return nil
	})
	// A retry of the change in the other region is the same request: its
	// id and outcome, nothing written.
	for i, tok := range tokens[:10] {
		resp := a.c.Do("PUT", base+"/me", tok, map[string]any{"option_id": opts[1]}, "Idempotency-Key", "b-change-1")
		if resp.Status != http.StatusOK && resp.Status != http.StatusAccepted {
			t.Fatalf("voter %d: the change retried in region a: %d %s", i, resp.Status, resp.Raw)
		}
	}

	// Phase 3: two changes per voter at the same moment, one per region.
	type race struct{ request [2]sent }
	races := make([]race, voters)
	cl.bothRegionsAtOnce(voters, func(i, ri int, r *region) {
		races[i].request[ri] = cl.change(t, r, "PUT", tokens[i], pollID, opts[2-2*ri], "race-"+r.name)
	})
	if t.Failed() {
		t.FailNow()
	}
	for _, r := range cl.regions {
		r.drained(t, 2*time.Minute)
	}
	both, one := 0, 0
	applied := make([][]string, voters) // per voter, the options of the racing changes that applied
	for i, tok := range tokens {
		for ri, r := range cl.regions {
			req := races[i].request[ri]
			if req.refused() {
				continue // refused at once: 409
			}
			state, code := cl.outcome(t, r, tok, pollID, req)
			switch {
			case state == "completed":
				applied[i] = append(applied[i], opts[2-2*ri])
			case state == "failed" && code == "VOTE_CHANGE_CONFLICT":
			default:
				t.Errorf("voter %d region %s: change %s is %s %s", i, r.name, req.id, state, code)
			}
		}
		switch len(applied[i]) {
		case 2:
			both++
		case 1:
			one++
		}
	}
	t.Logf("racing changes: %d voters had both applied (two versions), %d one, %d none", both, one, voters-both-one)
	// One version per applied change, and the ballot holds one of theirs.
	version := func(i int) int { return 1 + len(applied[i]) }
	cl.mine(t, tokens, pollID, func(i int, m myVote) error {
		if m.Version != version(i) {
			return fmt.Errorf("voter %d: version %d, want %d (changes applied: %q)", i, m.Version, version(i), applied[i])
		}
		if len(applied[i]) == 0 && m.OptionID != opts[1] || len(applied[i]) > 0 && !slices.Contains(applied[i], m.OptionID) {
			return fmt.Errorf("voter %d: option %s after the changes %q applied", i, m.OptionID, applied[i])
		}
		return nil
	})

	// Phase 4: a third revoke in region a; half of those vote again in
	// region b once the revoke is applied.
	var revoked, again []int
	requests := map[int]sent{}
	for i := 0; i < voters; i += 3 {
		revoked = append(revoked, i)
		if requests[i] = cl.change(t, a, "DELETE", tokens[i], pollID, "", "a-revoke"); requests[i].refused() {
			t.Fatalf("voter %d: the revoke through region a was refused", i)
		}
	}
	a.drained(t, 2*time.Minute)
	for _, i := range revoked {
		cl.completed(t, a, tokens[i], pollID, requests[i])
	}
	for _, i := range revoked {
		if i%2 != 0 {
			continue
		}
		again = append(again, i)
		// Region b's Redis never held this voter's flag (region a's
		// accepted the first vote); the worker writes the new ballot over
		// the revoked row.
		resp, _ := b.vote(t, tokens[i], pollID, opts[0])
		requests[i] = accepted(t, resp)
	}
	b.drained(t, 2*time.Minute)
	for _, i := range again {
		cl.completed(t, b, tokens[i], pollID, requests[i])
	}

	// What the rows say, read through either region: the expected counts.
	total := int64(voters - len(revoked) + len(again))
	counts := map[string]int64{}
	cl.mine(t, tokens, pollID, func(i int, m myVote) error {
		isRevoked := slices.Contains(revoked, i) && !slices.Contains(again, i)
		switch {
		case isRevoked && (!m.Revoked || m.HasVoted):
			return fmt.Errorf("voter %d revoked: %+v", i, m)
		case slices.Contains(again, i) && (m.OptionID != opts[0] || m.Version != version(i)+2):
			return fmt.Errorf("voter %d voted again: %+v, want version %d", i, m, version(i)+2)
		}
		return nil
	})
	for i, tok := range tokens {
		m := b.c.Do("GET", base+"/me", tok, nil).Must(t, http.StatusOK)
		if opt := m.Str("option_id"); opt != "" {
			counts[opt]++
		} else if !slices.Contains(revoked, i) {
			t.Fatalf("voter %d has no choice: %s", i, m.Raw)
		}
	}
	t.Logf("%d ballots after %d revokes and %d votes again: %v", total, len(revoked), len(again), counts)

	// Close through region b; the freeze waits for both regions.
	b.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	testenv.Eventually(t, 2*time.Minute, func() error {
		r := a.c.Do("GET", "/v1/polls/"+pollID+"/results?tally=final", owner, nil)
		if state := r.Str("tally_state"); state != "certified" {
			return fmt.Errorf("final tally %s, not certified yet", state)
		}
		return nil
	})
	cl.expectConverged(t, owner, pollID, total)
	for _, r := range cl.regions {
		got, votes := r.c.Results(owner, pollID, "final")
		maps.DeleteFunc(votes, func(_ string, n int64) bool { return n == 0 })
		if got != total || fmt.Sprint(votes) != fmt.Sprint(counts) {
			t.Errorf("region %s final %d %v, rows %d %v", r.name, got, votes, total, counts)
		}
	}
	cl.verify(t, a, pollID)
}

// myVote is GET …/votes/me.
type myVote struct {
	HasVoted bool   `json:"has_voted"`
	Revoked  bool   `json:"revoked"`
	Version  int    `json:"version"`
	OptionID string `json:"option_id"`
}

// mine checks every voter's ballot as both regions read it, until check
// holds in both (the other DC's replica may be a moment behind).
func (cl *cluster) mine(t *testing.T, tokens []string, pollID string, check func(i int, m myVote) error) {
	t.Helper()
	for _, r := range cl.regions {
		testenv.Eventually(t, 30*time.Second, func() error {
			for i, tok := range tokens {
				resp := r.c.Do("GET", "/v1/polls/"+pollID+"/votes/me", tok, nil)
				if resp.Status != http.StatusOK {
					return fmt.Errorf("region %s votes/me of voter %d: %d %s", r.name, i, resp.Status, resp.Raw)
				}
				var m myVote
				if err := json.Unmarshal(resp.Raw, &m); err != nil {
					return err
				}
				if err := check(i, m); err != nil {
					return fmt.Errorf("region %s: %w", r.name, err)
				}
			}
			return nil
		})
	}
}

// sent is a vote or change request as answered: its request id, and
// whether it was applied before the answer (sync mode's 200). A zero sent
// was refused at once.
type sent struct {
	id      string
	applied bool
}

func (s sent) refused() bool { return s.id == "" }

// accepted reads a vote's answer: 202 (queued) or 200 (written).
func accepted(t *testing.T, resp testenv.Response) sent {
	t.Helper()
	switch resp.Status {
	case http.StatusAccepted:
		return sent{id: resp.Str("request_id")}
	case http.StatusOK:
		return sent{id: resp.Str("request_id"), applied: true}
	}
	t.Fatalf("vote answered %d %s", resp.Status, resp.Raw)
	return sent{}
}

// change sends a PUT (option) or DELETE (revoke) of the voter's ballot to
// region r and returns its answer, or a zero sent when it was refused at
// once with 409 VOTE_CHANGE_CONFLICT (the ballot is being changed or
// counted elsewhere). Anything else fails the test.
func (cl *cluster) change(t *testing.T, r *region, method, token, pollID, optionID, key string) sent {
	var body any
	if method == "PUT" {
		body = map[string]any{"option_id": optionID}
	}
	resp := r.c.Do(method, "/v1/polls/"+pollID+"/votes/me", token, body, "Idempotency-Key", key)
	switch {
	case (resp.Status == http.StatusAccepted || resp.Status == http.StatusOK) && resp.Str("request_id") != "":
		return sent{id: resp.Str("request_id"), applied: resp.Status == http.StatusOK}
	case resp.Status == http.StatusConflict && resp.Code() == "VOTE_CHANGE_CONFLICT":
		return sent{}
	}
	t.Errorf("region %s %s votes/me: %d %s", r.name, method, resp.Status, resp.Raw)
	return sent{}
}

// outcome is a request's state and error code: completed when it was
// applied before its answer, else its status in region r.
func (cl *cluster) outcome(t *testing.T, r *region, token, pollID string, s sent) (string, string) {
	if s.applied {
		return "completed", ""
	}
	return r.status(t, token, pollID, s.id)
}

// completed waits until the request's status in region r is completed.
func (cl *cluster) completed(t *testing.T, r *region, token, pollID string, s sent) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		state, code := cl.outcome(t, r, token, pollID, s)
		if state != "completed" {
			return fmt.Errorf("region %s request %s is %s %s", r.name, s.id, state, code)
		}
		return nil
	})
}

// verify runs `tally verify --poll ID --json` with region r's settings and
// fails unless rows, index, counters and the frozen final agree.
func (cl *cluster) verify(t *testing.T, r *region, pollID string) {
	t.Helper()
	cmd := exec.Command(r.cmd.Path, "verify", "--poll", pollID, "--json")
	cmd.Env = r.cmd.Env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tally verify: %v\n%s", err, out)
	}
	var rep struct {
		Consistent    bool `json:"consistent"`
		FinalsChecked int  `json:"finals_checked"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("tally verify: %v\n%s", err, out)
	}
	if !rep.Consistent || rep.FinalsChecked != 1 {
		t.Fatalf("tally verify: %s", out)
	}
}
