package main

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/tally-vote/tally/pkg/id"
)

// pv is a votes partition: one (poll, voter).
type pv struct{ poll, voter id.ID }

// verdict is the accounting of one phase's requests against the rows.
type verdict struct {
	Offered, Accepted, Counted, Lost, Duplicated, LockedOut, Excused int
	// RefusedLate are second votes that were accepted (202) while the
	// fast path could not know of the voter's other request — it was still
	// being produced, or Redis had lost its flags — and then failed
	// ALREADY_VOTED at the worker, with the voter's other accepted request
	// holding the row. That is the one-vote rule working, not a lost vote:
	// a 409 there would have been a guess (SPEC invariant 7).
	RefusedLate int
	// Lost, by why: no row (and the request's state then), or the row
	// holds another request of the voter.
	LostNoRow, LostOtherRow int
	LostStates              map[string]int
	// LockedOutOwnRow: refused ALREADY_VOTED although the row is the
	// request's own (a retry told it had already voted).
	LockedOutOwnRow int
	Problems        []string
}

// matches reports whether row is the vote this accepted request was
// promised: for a 200 the answered vote_id, for a 202 the request_id.
func matches(r *request, row *voteRow) bool {
	if row == nil {
		return false
	}
	switch r.status {
	case http.StatusOK:
		return r.voteID != "" && row.VoteID.String() == r.voteID
	case http.StatusAccepted:
		return r.requestID != "" && row.RequestID.String() == r.requestID
	}
	return false
}

// account compares every request of the ledger with the voter's row.
//
//   - counted: accepted, and the row is this request's vote;
//   - lost: accepted, and there is no row, or the row is another request's
//     that was never accepted, or this request did not end failed
//     ALREADY_VOTED;
//   - refused late: accepted, failed ALREADY_VOTED, and the row is another
//     accepted request's of the same voter (see verdict.RefusedLate);
//   - duplicated: one voter was promised more than one distinct vote (two
//     200s with different vote_ids, or a 200 beside a 202 that completed
//     as another row);
//   - locked out: 409 ALREADY_VOTED while no other request of the voter
//     was accepted and the row (if any) is not an earlier request's that
//     was durably queued without the client hearing back;
//   - excused: accepted votes the options race may fail with a clear code.
func account(l *ledger, rows map[pv]*voteRow, states map[*request]string, excused map[*request]bool) verdict {
	v := verdict{LostStates: map[string]int{}}
	for _, vo := range l.voters {
		row := rows[pv{vo.poll, vo.id}]
		keys := map[string]*request{}
		accepted := 0
		for _, r := range vo.reqs {
			keys[r.key] = r
			if r.accepted() {
				accepted++
			}
		}
		if row != nil && keys[row.IdempotencyKey] == nil {
			v.Problems = append(v.Problems, fmt.Sprintf("voter %s on poll %s: a row from a request never sent (key %q)",
				vo.id, vo.poll, row.IdempotencyKey))
		}
		claimed := map[string]bool{}
		for _, r := range vo.reqs {
			v.Offered++
			if r.accepted() {
				v.Accepted++
				switch {
				case matches(r, row):
					v.Counted++
					claimed[row.VoteID.String()] = true
				case excused[r]:
					v.Excused++
				case row == nil:
					v.Lost++
					v.LostNoRow++
					v.LostStates[stateOr(states[r], "not looked up")]++
				case states[r] == "failed:ALREADY_VOTED" && rowAccepted(vo.reqs, row):
					v.RefusedLate++
				default:
					v.Lost++
					v.LostOtherRow++
					v.LostStates[stateOr(states[r], "not looked up")]++
				}
				if r.status == http.StatusOK && r.voteID != "" {
					claimed[r.voteID] = true
				}
			}
			if r.status != http.StatusConflict || r.code != "ALREADY_VOTED" {
				continue
			}
			if accepted > 0 {
				continue // refused because another request of the voter was accepted
			}
			if row != nil && row.IdempotencyKey != r.key && keys[row.IdempotencyKey] != nil {
				continue // an earlier request was durably queued; the client never heard
			}
			v.LockedOut++
			if row != nil && row.IdempotencyKey == r.key {
				v.LockedOutOwnRow++
			}
		}
		if len(claimed) > 1 {
			v.Duplicated += len(claimed) - 1
		}
	}
	return v
}

// rowAccepted reports whether the row is the vote of one of reqs that was
// accepted.
func rowAccepted(reqs []*request, row *voteRow) bool {
	for _, r := range reqs {
		if r.accepted() && matches(r, row) {
			return true
		}
	}
	return false
}

func stateOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// breakdown renders the request outcomes of a ledger: final statuses and
// codes, and how many were second votes.
func breakdown(l *ledger) map[string]int {
	out := map[string]int{}
	for _, r := range l.reqs {
		k := fmt.Sprint(r.status)
		if r.status == 0 {
			k = "no answer"
		}
		if r.code != "" {
			k += " " + r.code
		}
		if r.second {
			k = "second vote: " + k
		}
		if len(r.answers) > 1 {
			out["retried requests"]++
		}
		out[k]++
	}
	return out
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
