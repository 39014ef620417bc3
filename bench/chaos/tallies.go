package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

// results is a GET …/results answer.
type results struct {
	total   int64
	options map[string]int64
	status  string
}

func (h *harness) results(ctx context.Context, poll id.ID, mode string) (results, error) {
	a := h.api.do(ctx, "GET", "/v1/polls/"+poll.String()+"/results?tally="+mode, h.owner, nil, "")
	if a.status != http.StatusOK {
		return results{}, fmt.Errorf("results?tally=%s: %d %s", mode, a.status, a.code())
	}
	r := results{options: map[string]int64{}, status: a.str("status")}
	t, _ := a.body["total_votes"].(float64)
	r.total = int64(t)
	list, _ := a.body["options"].([]any)
	for _, o := range list {
		m, _ := o.(map[string]any)
		id, _ := m["option_id"].(string)
		n, _ := m["votes"].(float64)
		r.options[id] = int64(n)
	}
	return r, nil
}

// pollTruth is what the rows say about one poll.
type pollTruth struct {
	ballots  int64
	options  map[string]int64
	orphaned int64 // selections of options the poll does not have
}

// tallies checks each poll's counts against its rows once drained:
// tally=final must equal the rows (ballots and per option), no row may sit
// on an option the poll does not have, total_votes must equal the sum of
// the options (single-choice polls), and after a reconciliation the live
// tally must not exceed the rows. It returns the ballots counted twice (or
// missing) in the tallies, and notes.
func (h *harness) tallies(ctx context.Context, ph *phase, rows map[pv]*voteRow) (int, []string) {
	truth := map[id.ID]*pollTruth{}
	for _, p := range ph.allPolls() {
		truth[p.id] = &pollTruth{options: map[string]int64{}}
	}
	current := map[id.ID]map[string]bool{}
	for _, p := range ph.allPolls() {
		a := h.api.do(ctx, "GET", "/v1/polls/"+p.id.String(), h.owner, nil, "")
		if cur, err := parsePoll(a); err == nil {
			current[p.id] = map[string]bool{}
			for _, o := range cur.options {
				current[p.id][o.String()] = true
			}
		}
	}
	for k, r := range rows {
		t := truth[k.poll]
		t.ballots++
		for _, o := range r.OptionIDs {
			if cur := current[k.poll]; cur != nil && !cur[o.String()] {
				t.orphaned++
			}
			t.options[o.String()]++
		}
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 4)
		dup      int
		notes    []string
		drift    int64
		repaired int64
	)
	for _, p := range ph.allPolls() {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, n, rep := h.pollTally(ctx, ph, p.id, truth[p.id])
			mu.Lock()
			dup += d
			notes = append(notes, n...)
			drift += rep.CounterDrift.Ballots
			repaired += rep.Repaired.Ballots
			mu.Unlock()
		}()
	}
	wg.Wait()
	if drift != 0 || repaired != 0 {
		notes = append(notes, fmt.Sprintf("reconciliation found %+d ballots of counter drift (rows minus counters) and repaired %+d",
			drift, repaired))
	}
	return dup, capList(notes, 8)
}

// pollTally checks one poll; it returns tally ballots off the rows, notes,
// and what reconciliation found and repaired.
func (h *harness) pollTally(ctx context.Context, ph *phase, poll id.ID, t *pollTruth) (int, []string, reconcileReport) {
	var (
		dup   int
		notes []string
	)
	if t.orphaned > 0 {
		ph.violate("poll %s: %d selections counted on options the poll does not have", poll, t.orphaned)
	}
	final, err := h.results(ctx, poll, "final")
	if err == nil && final.total != t.ballots {
		// tally=final may be served from a cache up to 5 s old.
		_ = sleepCtx(ctx, 5500*time.Millisecond)
		final, err = h.results(ctx, poll, "final")
	}
	switch {
	case err != nil:
		notes = append(notes, fmt.Sprintf("poll %s: %v", poll, err))
	default:
		if final.total != t.ballots {
			dup += int(abs(final.total - t.ballots))
			notes = append(notes, fmt.Sprintf("poll %s: tally=final total %d, rows %d", poll, final.total, t.ballots))
		}
		var sum int64
		for id, n := range final.options {
			sum += n
			if n != t.options[id] {
				notes = append(notes, fmt.Sprintf("poll %s: tally=final option %s has %d, rows %d", poll, id, n, t.options[id]))
			}
		}
		if sum != final.total {
			ph.violate("poll %s: tally=final total_votes %d but its options sum to %d", poll, final.total, sum)
		}
	}
	if t.ballots == 0 {
		return dup, notes, reconcileReport{}
	}
	rep, err := h.reconcile(ctx, poll)
	if err != nil {
		return dup, append(notes, fmt.Sprintf("poll %s: reconcile: %v", poll, err)), rep
	}
	live, err := h.results(ctx, poll, "live")
	if err == nil && live.total > t.ballots {
		_ = sleepCtx(ctx, 1500*time.Millisecond) // tally=live may be cached for 1 s
		live, err = h.results(ctx, poll, "live")
	}
	if err != nil {
		return dup, append(notes, fmt.Sprintf("poll %s: %v", poll, err)), rep
	}
	if live.total > t.ballots {
		dup += int(live.total - t.ballots)
		notes = append(notes, fmt.Sprintf("poll %s: tally=live %d above the rows %d after reconciliation", poll, live.total, t.ballots))
	}
	return dup, notes, rep
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
