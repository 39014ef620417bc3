package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/scylladb/gocqlx/v2"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/scan"
)

// check waits for the drain, reads the votes table and judges the phase.
func (h *harness) check(ctx context.Context, ph *phase) Row {
	row := Row{Fault: ph.name, RecoveryS: -1, Detail: map[string]any{}}
	t0 := time.Now()
	drained, lag := h.waitDrained(ctx)
	row.Detail["drain_s"] = round1(time.Since(t0).Seconds())
	if !drained {
		row.Notes = append(row.Notes, fmt.Sprintf("not drained within %s (lag %d); pending votes count as lost", h.opt.drainTimeout, lag))
	}
	polls := pollSet(ph.allPolls())
	var (
		rows   map[pv]*voteRow
		states map[*request]string
		err    error
	)
	// A request still pending once the topic is drained gets two more
	// looks before it counts as lost.
	for attempt := 0; ; attempt++ {
		if rows, err = h.scanRows(ctx, polls); err != nil {
			row.Notes = append(row.Notes, "scan votes: "+err.Error())
			return row
		}
		states = h.statuses(ctx, ph.led, rows)
		pending := 0
		for _, s := range states {
			if s == "pending" {
				pending++
			}
		}
		if pending == 0 || attempt == 2 || ctx.Err() != nil {
			break
		}
		_ = sleepCtx(ctx, 3*time.Second)
	}
	h.excuseOptionRaces(ph, states)
	v := account(ph.led, rows, states, ph.excused)
	row.Offered, row.Accepted, row.Counted, row.Lost = v.Offered, v.Accepted, v.Counted, v.Lost
	row.Duplicated, row.LockedOut, row.Excused, row.RefusedLate = v.Duplicated, v.LockedOut, v.Excused, v.RefusedLate
	if v.LostNoRow > 0 {
		row.Notes = append(row.Notes, fmt.Sprintf("lost: %d accepted without a row (request states: %s)",
			v.LostNoRow, formatCounts(v.LostStates)))
	}
	if v.LostOtherRow > 0 {
		row.Notes = append(row.Notes, fmt.Sprintf("lost: %d accepted whose voter's row is another request's", v.LostOtherRow))
	}
	if v.LockedOutOwnRow > 0 {
		row.Notes = append(row.Notes, fmt.Sprintf("locked out: %d refused ALREADY_VOTED for their own recorded vote", v.LockedOutOwnRow))
	}
	ph.violations = append(ph.violations, v.Problems...)

	dup, tallyNotes := h.tallies(ctx, ph, rows)
	row.Duplicated += dup
	row.Notes = append(row.Notes, tallyNotes...)

	if ph.outage {
		row.RecoveryS = recovery(ph)
		if !ph.faultEnd.IsZero() && row.RecoveryS < 0 {
			ph.violate("no vote was accepted after the fault ended")
		}
	}
	row.Violations = len(ph.violations)
	row.Notes = append(row.Notes, ph.notes...)
	row.Notes = append(row.Notes, capList(ph.violations, 8)...)
	row.Detail["outcomes"] = breakdown(ph.led)
	if ph.led.shed > 0 || ph.led.noVoter > 0 {
		row.Notes = append(row.Notes, fmt.Sprintf("offers dropped by the client: %d at max-in-flight, %d without a voter at hand",
			ph.led.shed, ph.led.noVoter))
	}
	if !ph.faultStart.IsZero() && !ph.faultEnd.IsZero() {
		row.Detail["fault_s"] = round1(ph.faultEnd.Sub(ph.faultStart).Seconds())
		before, during, after := acceptedAround(ph)
		row.Detail["accepted_before_fault"], row.Detail["accepted_during_fault"], row.Detail["accepted_after_fault"] =
			before, during, after
		if ph.outage && ph.faultEnd.Sub(ph.faultStart) >= time.Second {
			row.Notes = append(row.Notes, fmt.Sprintf("votes accepted during the fault's %.1f s: %d (before: %d, after: %d)",
				ph.faultEnd.Sub(ph.faultStart).Seconds(), during, before, after))
		}
	}
	if h.opt.dump {
		if err := h.dump(ph, rows, states); err != nil {
			row.Notes = append(row.Notes, "dump: "+err.Error())
		}
	}
	// A vote answered 202 and then refused is a broken promise (SPEC
	// invariant 2) everywhere but after a Redis data loss, where a voter
	// whose first vote predates the loss may get one.
	lateOK := ph.name == "redis-restart"
	if row.RefusedLate > 0 && !lateOK {
		row.Notes = append(row.Notes, fmt.Sprintf("refused late: %d answered 202 and then failed ALREADY_VOTED", row.RefusedLate))
	}
	row.Pass = row.Lost == 0 && row.Duplicated == 0 && row.LockedOut == 0 && row.Violations == 0 &&
		(row.RefusedLate == 0 || lateOK)
	return row
}

// waitDrained waits until the worker group has committed the whole votes
// topic (twice in a row), gives up when the lag has not moved for a while
// (a stuck worker), and never waits past --drain-timeout.
func (h *harness) waitDrained(ctx context.Context) (bool, int64) {
	deadline := time.Now().Add(h.opt.drainTimeout)
	stall := min(h.opt.drainTimeout/2, time.Minute)
	var (
		zeros      int
		last       int64 = -2
		lastChange       = time.Now()
	)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n := h.lag(ctx)
		if n == 0 {
			if zeros++; zeros == 2 {
				return true, 0
			}
		} else {
			zeros = 0
		}
		if n != last {
			last, lastChange = n, time.Now()
		} else if n > 0 && time.Since(lastChange) > stall {
			h.logf("drain: lag stuck at %d for %s; giving up", n, stall)
			return false, n
		}
		_ = sleepCtx(ctx, time.Second)
	}
	return false, last
}

// scanRows reads the votes table with a token-range scan and keeps the rows
// of the given polls.
func (h *harness) scanRows(ctx context.Context, polls map[id.ID]pollInfo) (map[pv]*voteRow, error) {
	out := map[pv]*voteRow{}
	var mu sync.Mutex
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	err := h.withSession(sctx, h.keyspace, func(s gocqlx.Session) error {
		return scanVotes(sctx, s, scanOptions{Splits: 64, Workers: 4, Consistency: scan.DefaultConsistency},
			func(r voteRow) error {
				if _, ok := polls[r.PollID]; !ok {
					return nil
				}
				mu.Lock()
				out[pv{r.PollID, r.VoterID}] = &r
				mu.Unlock()
				return nil
			})
	})
	return out, err
}

// statuses asks the API for the state of every accepted request whose row
// is not its own: pending, completed, failed:CODE.
func (h *harness) statuses(ctx context.Context, l *ledger, rows map[pv]*voteRow) map[*request]string {
	var todo []*request
	for _, r := range l.reqs {
		if r.accepted() && r.requestID != "" && !matches(r, rows[pv{r.poll, r.voter.id}]) {
			todo = append(todo, r)
		}
	}
	// Bounded: with thousands of votes missing, a sample tells why.
	if len(todo) > maxStateLookups {
		todo = todo[:maxStateLookups]
	}
	out := make(map[*request]string, len(todo))
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, 16)
	)
	for _, r := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			s := h.requestState(ctx, r)
			mu.Lock()
			out[r] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// maxStateLookups bounds the request-status reads of one check.
const maxStateLookups = 5000

func (h *harness) requestState(ctx context.Context, r *request) string {
	var a answer
	for attempt := 0; attempt < 3; attempt++ {
		a = h.api.do(ctx, "GET", "/v1/polls/"+r.poll.String()+"/votes/requests/"+r.requestID, r.voter.token, nil, "")
		if !retryable(a.status) {
			break
		}
		_ = sleepCtx(ctx, time.Second)
	}
	if a.status != http.StatusOK {
		return fmt.Sprintf("status lookup %d %s", a.status, a.code())
	}
	st := a.str("state")
	if st == "failed" {
		code := ""
		if e, ok := a.body["error"].(map[string]any); ok {
			code, _ = e["code"].(string)
		}
		return "failed:" + stateOr(code, "no code")
	}
	return st
}

// excuseOptionRaces marks the options race's accepted votes whose PATCH
// won and whose request then failed with a clear code: the outcome the
// brief allows besides a refused PATCH.
func (h *harness) excuseOptionRaces(ph *phase, states map[*request]string) {
	for _, rc := range ph.optionRaces {
		if rc.patch.status != http.StatusOK || !rc.vote.accepted() {
			continue
		}
		s := states[rc.vote]
		if len(s) > len("failed:") && s[:7] == "failed:" && s != "failed:INTERNAL" && s != "failed:no code" {
			ph.excused[rc.vote] = true
		}
	}
}

// acceptedAround counts accepted votes by when they were accepted: before,
// during and after the fault window.
func acceptedAround(ph *phase) (before, during, after int) {
	for _, r := range ph.led.reqs {
		switch {
		case !r.accepted():
		case r.acceptedAt.Before(ph.faultStart):
			before++
		case r.acceptedAt.Before(ph.faultEnd):
			during++
		default:
			after++
		}
	}
	return before, during, after
}

// recovery is the time from the end of the fault to the first vote
// accepted after it; -1 without a fault window or when none was.
func recovery(ph *phase) float64 {
	if ph.faultEnd.IsZero() {
		return -1
	}
	var first time.Time
	for _, r := range ph.led.reqs {
		if r.accepted() && !r.acceptedAt.Before(ph.faultEnd) && (first.IsZero() || r.acceptedAt.Before(first)) {
			first = r.acceptedAt
		}
	}
	if first.IsZero() {
		return -1
	}
	return round1(first.Sub(ph.faultEnd).Seconds())
}

// reconcileReport is the part of `tally reconcile`'s JSON the check reads.
type reconcileReport struct {
	Rows, CounterDrift, Repaired struct {
		Ballots int64
	}
}

// reconcile runs `tally reconcile --poll` (recount from rows, repair the
// counters and the live cache) as an operator would.
func (h *harness) reconcile(ctx context.Context, poll id.ID) (reconcileReport, error) {
	var rep reconcileReport
	out, err := h.tallyCmd(ctx, time.Minute, "reconcile", "--poll", poll.String())
	if err != nil {
		return rep, err
	}
	return rep, json.Unmarshal(out, &rep)
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

func capList(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(append([]string{}, s[:n]...), fmt.Sprintf("… and %d more", len(s)-n))
}
