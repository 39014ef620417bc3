package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// changeVoters is how many voters the change-kill row moves.
const changeVoters = 200

// changeOutcome is one change request's answer, to compare its retry with.
type changeOutcome struct {
	status    int
	state     string
	version   float64
	requestID string
}

func outcomeOf(a answer) changeOutcome {
	v, _ := a.body["version"].(float64)
	return changeOutcome{status: a.status, state: a.str("status"), version: v, requestID: a.str("request_id")}
}

// injectChangeKill (issue 22): on a poll of its own that allows changes,
// voters vote through the queue, then change (all), revoke (half) and vote
// again (a quarter) while the worker is SIGKILLed and restarted as in
// worker-kill. It then retries every change and revoke with its key, which
// must get its original outcome, closes the poll, and holds the frozen
// final tally to what the answers say each voter's ballot is: no revoked
// ballot counted, every current one once. Its poll stays out of the load's
// ledger; what it finds is reported as this row's violations.
func injectChangeKill(ctx context.Context, h *harness, ph *phase, l *load) error {
	created := h.api.do(ctx, "POST", "/v1/polls", h.owner, map[string]any{
		"title": "chaos change-kill " + h.runID,
		"options": []map[string]any{{"text": "a", "display_order": 0}, {"text": "b", "display_order": 1},
			{"text": "c", "display_order": 2}},
		"settings": map[string]any{"allow_anonymous": true, "allow_vote_change": true, "max_vote_changes": 10},
	}, "")
	if created.status != http.StatusCreated {
		return fmt.Errorf("create the change poll: %d %v", created.status, created.body)
	}
	pollID := created.str("poll_id")
	var opts []string
	for _, o := range created.body["options"].([]any) {
		opts = append(opts, o.(map[string]any)["option_id"].(string))
	}
	base := "/v1/polls/" + pollID + "/votes"
	tokens := make([]string, 0, changeVoters)
	for range changeVoters {
		tok, ok := l.tokens.wait(10 * time.Second)
		if !ok {
			return fmt.Errorf("no anonymous voter available")
		}
		tokens = append(tokens, tok.token)
	}
	// until sends a request until it is answered 200 or 202, retrying
	// the answers that say "not yet" (409 VOTE_CHANGE_CONFLICT, 503, 429,
	// no answer) as a client should: after Retry-After when the answer
	// has one; a 202 is then followed until its request completed. (The
	// conflict retries count against the voter's vote-route limit, so a
	// voter kept waiting by a killed worker meets its 429.)
	until := func(method, path, tok string, body any, key string) answer {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			a := h.api.do(ctx, method, path, tok, body, h.runID+"-"+key)
			retry := retryable(a.status) || a.code() == "VOTE_CHANGE_CONFLICT"
			if a.status == http.StatusAccepted {
				for rid := a.str("request_id"); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(200 * time.Millisecond) {
					st := h.api.do(ctx, "GET", base+"/requests/"+rid, tok, nil, "")
					if s := st.str("state"); s == "completed" || s == "failed" {
						if s == "failed" {
							ph.violate("change-kill: %s %s request %s failed: %v", method, path, rid, st.body)
						}
						break
					}
				}
				return a
			}
			if a.status == http.StatusOK || !retry || time.Now().After(deadline) || ctx.Err() != nil {
				return a
			}
			time.Sleep(max(a.retryAfter, 100*time.Millisecond))
		}
	}
	for i, tok := range tokens {
		if a := until("POST", base, tok, map[string]any{"option_id": opts[i%3]}, "v1"); a.status != http.StatusAccepted && a.status != http.StatusOK {
			return fmt.Errorf("vote %d: %d %v", i, a.status, a.body)
		}
	}

	killed := make(chan error, 1)
	go func() { killed <- injectWorkerKill(ctx, h, ph, l) }()
	changes, revokes := make([]changeOutcome, len(tokens)), make([]changeOutcome, len(tokens))
	expect := make([]string, len(tokens)) // each voter's current choice, "" when revoked
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, tok := range tokens {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			changes[i] = outcomeOf(until("PUT", base+"/me", tok, map[string]any{"option_id": opts[(i+1)%3]}, "c1"))
			expect[i] = opts[(i+1)%3]
			if i%2 == 0 {
				revokes[i] = outcomeOf(until("DELETE", base+"/me", tok, nil, "r1"))
				expect[i] = ""
			}
			if i%4 == 0 {
				if a := until("POST", base, tok, map[string]any{"option_id": opts[(i+2)%3]}, "v2"); a.status == http.StatusAccepted || a.status == http.StatusOK {
					expect[i] = opts[(i+2)%3]
				} else {
					ph.violate("change-kill: vote again %d: %d %v", i, a.status, a.body)
				}
			}
		}()
	}
	wg.Wait()
	if err := <-killed; err != nil {
		return err
	}
	// retried asks again with the request's key, waiting out 429s and
	// 503s: the check is of the outcome, not of the voter's limits.
	retried := func(method, path, tok string, body any, key string) answer {
		for deadline := time.Now().Add(time.Minute); ; {
			a := h.api.do(ctx, method, path, tok, body, h.runID+"-"+key)
			if !retryable(a.status) || time.Now().After(deadline) || ctx.Err() != nil {
				return a
			}
			time.Sleep(max(a.retryAfter, 100*time.Millisecond))
		}
	}
	for i, tok := range tokens {
		// 200 (written through) or 202 (queued, followed to completed);
		// either way the retry is answered from the row: this request,
		// its kind and version.
		if changes[i].status != http.StatusOK && changes[i].status != http.StatusAccepted {
			ph.violate("change-kill: change %d answered %+v", i, changes[i])
			continue
		}
		if got := outcomeOf(retried("PUT", base+"/me", tok, map[string]any{"option_id": opts[(i+1)%3]}, "c1")); got.status != http.StatusOK ||
			got.requestID != changes[i].requestID || got.state != "changed" || got.version != 1 {
			ph.violate("change-kill: retried change %d answered %+v, first %+v", i, got, changes[i])
		}
		if i%2 == 0 {
			if got := outcomeOf(retried("DELETE", base+"/me", tok, nil, "r1")); got.status != http.StatusOK ||
				got.requestID != revokes[i].requestID || got.state != "revoked" || got.version != 2 {
				ph.violate("change-kill: retried revoke %d answered %+v, first %+v", i, got, revokes[i])
			}
		}
	}

	want, ballots := map[string]int64{}, int64(0)
	for _, o := range expect {
		if o != "" {
			want[o]++
			ballots++
		}
	}
	// Live converges once the queue is drained and a reconciliation ran;
	// the frozen final must equal the answers at once.
	if a := h.api.do(ctx, "PATCH", "/v1/polls/"+pollID, h.owner, map[string]any{"status": "closed"}, ""); a.status != http.StatusOK {
		return fmt.Errorf("close the change poll: %d %v", a.status, a.body)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		a := h.api.do(ctx, "GET", "/v1/polls/"+pollID+"/results?tally=final", h.owner, nil, "")
		if a.str("tally_state") == "certified" {
			total, _ := a.body["total_votes"].(float64)
			if int64(total) != ballots {
				ph.violate("change-kill: frozen final counts %d ballots, the answers say %d", int64(total), ballots)
			}
			for _, o := range a.body["options"].([]any) {
				m := o.(map[string]any)
				if v, _ := m["votes"].(float64); int64(v) != want[m["option_id"].(string)] {
					ph.violate("change-kill: frozen final gives option %v %d votes, the answers say %d", m["option_id"], int64(v), want[m["option_id"].(string)])
				}
			}
			ph.note("change-kill: %d voters, %d current ballots frozen", len(tokens), ballots)
			return nil
		}
		if time.Now().After(deadline) {
			ph.violate("change-kill: the change poll's final tally was not frozen within 3 minutes of its close")
			return nil
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return err
		}
	}
}
