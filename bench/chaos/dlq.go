package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/vote"
)

// dlqPolls is how many polls the dlq-replay row freezes and then replays
// dead letters into; dlqPerPoll how many dead letters each gets of each
// kind.
const (
	dlqPolls   = 10
	dlqPerPoll = 5
)

// injectDLQReplay: polls get votes, are closed by their owner and frozen;
// then dead letters of those polls are re-driven with `tally dlq replay`
// while the steady load goes on: ballots of voters who never voted (as if
// accepted while the poll was open and dead-lettered then) and the very
// messages of counted ballots (a redelivery). Nothing may be written after
// the freeze: the check finds a row nobody sent (a violation) or a frozen
// tally that differs from the rows (duplicated). The row also waits until
// every fresh dead letter was refused again, and says with what.
func injectDLQReplay(ctx context.Context, h *harness, ph *phase, l *load) error {
	polls, err := h.createPolls(ctx, "dlq-replay", dlqPolls, 3)
	if err != nil {
		return err
	}
	ph.racePolls = polls
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		cast []*request
	)
	for i, p := range polls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 3 {
				r, err := h.castNow(ctx, ph, l.tokens, p, p.options[k%len(p.options)], fmt.Sprintf("dlq-%d-%d", i, k))
				if err != nil {
					ph.note("vote before the close: %v", err)
					continue
				}
				mu.Lock()
				cast = append(cast, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Let these votes be applied, then close every poll and wait for the
	// freezes. Their own request states say so; the topic's lag does not,
	// since the steady load keeps it above zero most of the time.
	if err := h.waitApplied(ctx, cast, h.opt.drainTimeout); err != nil {
		return fmt.Errorf("votes not applied before the close: %w", err)
	}
	closedAt := map[id.ID]time.Time{}
	for _, p := range polls {
		a := h.api.do(ctx, "PATCH", "/v1/polls/"+p.id.String(), h.owner, map[string]any{"status": "closed"}, "")
		if a.status != http.StatusOK {
			return fmt.Errorf("close poll %s: %d %s %v", p.id, a.status, a.code(), a.err)
		}
		closedAt[p.id] = time.Now()
		ph.closedOK = append(ph.closedOK, p)
	}
	frozen, err := h.waitFrozen(ctx, polls, 3*time.Minute)
	if err != nil {
		return err
	}
	ph.note("polls frozen: %d of %d (ballots %v)", len(frozen), len(polls), frozen)

	rows, err := h.scanRows(ctx, pollSet(polls))
	if err != nil {
		return err
	}
	byPoll := map[id.ID][]*voteRow{}
	for k, r := range rows {
		byPoll[k.poll] = append(byPoll[k.poll], r)
	}

	// The dead letters, as the worker writes them.
	ph.faultStart = time.Now()
	var (
		msgs   []kafka.Message
		fresh  []vote.Message
		copies int
	)
	for _, p := range polls {
		accepted := closedAt[p.id].Add(-time.Second).UTC()
		for k := range dlqPerPoll {
			m := vote.Message{RequestID: id.New(), VoteID: id.New(), PollID: p.id, VoterID: id.New(),
				OptionIDs: []id.ID{p.options[k%len(p.options)]}, AcceptedAt: accepted, PollSeenAt: accepted, Anonymous: true}
			fresh = append(fresh, m)
			msgs = append(msgs, deadLetter(m, "read poll: timeout"))
		}
		for _, r := range byPoll[p.id] {
			m := vote.FromBallot(r)
			msgs = append(msgs, deadLetter(m, "index votes: timeout"))
			copies++
		}
	}
	w := kafkax.NewWriter(h.kafka, h.kafka.DLQTopic)
	err = w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write dead letters: %w", err)
	}
	out, err := h.tallyCmd(ctx, 2*time.Minute, "dlq", "replay", "--group", h.kafka.Group+"-dlq", "--json")
	if err != nil {
		return err
	}
	var last struct {
		Summary struct {
			Replayed int `json:"replayed"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(lastLine(out), &last); err != nil {
		return fmt.Errorf("dlq replay output %q: %w", out, err)
	}
	rep := last.Summary
	ph.note("dead letters written: %d of voters who never voted, %d copies of counted ballots; tally dlq replay re-drove %d (the run's earlier dead letters included)",
		len(fresh), copies, rep.Replayed)
	if rep.Replayed < len(msgs) {
		ph.violate("tally dlq replay re-drove %d of the %d dead letters written", rep.Replayed, len(msgs))
	}
	codes, err := h.waitRefused(ctx, fresh, 2*time.Minute)
	if err != nil {
		return err
	}
	ph.faultEnd = time.Now()
	ph.note("the replayed ballots of voters who never voted, by outcome: %v", codes)
	for code, n := range codes {
		if code != "POLL_NOT_ACTIVE" {
			ph.violate("%d replayed dead letters of a frozen poll ended %s, want POLL_NOT_ACTIVE", n, code)
		}
	}
	return nil
}

// deadLetter is m as the worker puts it on the DLQ.
func deadLetter(m vote.Message, cause string) kafka.Message {
	body, _ := m.AppendJSON(nil)
	return kafka.Message{Key: m.VoterID[:], Value: body, Headers: []kafka.Header{
		{Key: "error", Value: []byte(cause)}, {Key: "attempts", Value: []byte(strconv.Itoa(3))}}}
}

// waitFrozen waits until every poll has a final tally and returns each
// one's frozen ballot count.
func (h *harness) waitFrozen(ctx context.Context, polls []pollInfo, within time.Duration) (map[string]int64, error) {
	out := map[string]int64{}
	err := h.withSession(ctx, h.keyspace, func(s gocqlx.Session) error {
		deadline := time.Now().Add(within)
		for {
			var last error
			for _, p := range polls {
				if _, ok := out[p.id.String()]; ok {
					continue
				}
				var n int64
				err := s.Session.Query(`SELECT ballots FROM final_tallies WHERE poll_id = ? LIMIT 1`, p.id).WithContext(ctx).Scan(&n)
				switch {
				case errors.Is(err, gocql.ErrNotFound):
				case err != nil:
					last = err
				default:
					out[p.id.String()] = n
				}
			}
			if len(out) == len(polls) {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d polls frozen after %s (last error: %v)", len(out), len(polls), within, last)
			}
			if err := sleepCtx(ctx, time.Second); err != nil {
				return err
			}
		}
	})
	return out, err
}

// waitRefused waits until each message's request has a failure recorded
// (or a ballot row) and counts them by error code ("recorded" for a row).
func (h *harness) waitRefused(ctx context.Context, msgs []vote.Message, within time.Duration) (map[string]int, error) {
	codes := map[string]int{}
	done := map[id.ID]bool{}
	err := h.withSession(ctx, h.keyspace, func(s gocqlx.Session) error {
		deadline := time.Now().Add(within)
		for {
			for _, m := range msgs {
				if done[m.RequestID] {
					continue
				}
				var code string
				err := s.Session.Query(`SELECT error_code FROM vote_request_failures WHERE poll_id = ? AND voter_id = ? AND request_id = ?`,
					m.PollID, m.VoterID, m.RequestID).WithContext(ctx).Scan(&code)
				if err == nil {
					codes[code]++
					done[m.RequestID] = true
					continue
				}
				if !errors.Is(err, gocql.ErrNotFound) {
					continue // asked again next round
				}
				var n int
				if err := s.Session.Query(`SELECT COUNT(*) FROM votes WHERE poll_id = ? AND voter_id = ?`, m.PollID, m.VoterID).
					WithContext(ctx).Scan(&n); err == nil && n > 0 {
					codes["recorded"]++
					done[m.RequestID] = true
				}
			}
			if len(done) == len(msgs) {
				return nil
			}
			if time.Now().After(deadline) {
				codes["undecided"] = len(msgs) - len(done)
				return nil
			}
			if err := sleepCtx(ctx, time.Second); err != nil {
				return err
			}
		}
	})
	return codes, err
}

// lastLine is the last non-empty line of out.
func lastLine(out []byte) []byte {
	end := len(out)
	for end > 0 && (out[end-1] == '\n' || out[end-1] == '\r') {
		end--
	}
	start := end
	for start > 0 && out[start-1] != '\n' {
		start--
	}
	return out[start:end]
}

// waitApplied waits until no request of reqs that was answered 202 is
// still pending: each was applied or refused by the worker. A 200 was
// applied before its answer; a refusal applies nothing.
func (h *harness) waitApplied(ctx context.Context, reqs []*request, within time.Duration) error {
	deadline := time.Now().Add(within)
	for ctx.Err() == nil {
		var left []*request
		for _, r := range reqs {
			if r.status != http.StatusAccepted {
				continue
			}
			if st := h.requestState(ctx, r); st == vote.Pending || strings.HasPrefix(st, "status lookup") {
				left = append(left, r)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d still pending after %s", len(left), len(reqs), within)
		}
		reqs = left
		_ = sleepCtx(ctx, 500*time.Millisecond)
	}
	return ctx.Err()
}
