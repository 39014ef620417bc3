package main

import (
	"reflect"
	"testing"

	"github.com/tally-vote/tally/pkg/id"
)

// The checker's rules decide every row of the matrix, so they are tested
// on their own, without servers.
func TestAccount(t *testing.T) {
	poll := id.New()
	rid := func() id.ID { return id.New() }
	type req struct {
		key              string
		status           int
		code             string
		requestID, voteI id.ID
	}
	type tc struct {
		name    string
		reqs    []req
		row     *voteRow // nil: no row; IdempotencyKey set to the key it holds
		excuse  bool     // excuse the first request
		state   string   // the last request's state, as the API reports it
		want    verdict
		problem bool
	}
	r1, r2, v1, v2 := rid(), rid(), rid(), rid()
	cases := []tc{
		{name: "202 and its row", reqs: []req{{"a", 202, "", r1, id.ID{}}},
			row:  &voteRow{RequestID: r1, VoteID: v1, IdempotencyKey: "a"},
			want: verdict{Offered: 1, Accepted: 1, Counted: 1}},
		{name: "202 without a row is lost", reqs: []req{{"a", 202, "", r1, id.ID{}}},
			want: verdict{Offered: 1, Accepted: 1, Lost: 1, LostNoRow: 1}},
		{name: "200 whose vote_id is the row's", reqs: []req{{"a", 200, "", r1, v1}},
			row:  &voteRow{RequestID: r1, VoteID: v1, IdempotencyKey: "a"},
			want: verdict{Offered: 1, Accepted: 1, Counted: 1}},
		{name: "200 whose vote_id is not the row's is lost", reqs: []req{{"a", 200, "", r1, v2}},
			row:  &voteRow{RequestID: r1, VoteID: v1, IdempotencyKey: "a"},
			want: verdict{Offered: 1, Accepted: 1, Lost: 1, LostOtherRow: 1}},
		{name: "two accepted requests, one row: the other is lost",
			reqs: []req{{"a", 202, "", r1, id.ID{}}, {"b", 202, "", r2, id.ID{}}},
			row:  &voteRow{RequestID: r1, VoteID: v1, IdempotencyKey: "a"},
			want: verdict{Offered: 2, Accepted: 2, Counted: 1, Lost: 1, LostOtherRow: 1}},
		{name: "two accepted requests, the other failed ALREADY_VOTED: refused late, not lost",
			reqs:  []req{{"a", 202, "", r1, id.ID{}}, {"b", 202, "", r2, id.ID{}}},
			row:   &voteRow{RequestID: r1, VoteID: v1, IdempotencyKey: "a"},
			state: "failed:ALREADY_VOTED",
			want:  verdict{Offered: 2, Accepted: 2, Counted: 1, RefusedLate: 1}},
		{name: "failed ALREADY_VOTED but the row is no accepted request's: lost",
			reqs:  []req{{"a", 0, "", id.ID{}, id.ID{}}, {"b", 202, "", r2, id.ID{}}},
			row:   &voteRow{RequestID: r1, VoteID: v1, IdempotencyKey: "a"},
			state: "failed:ALREADY_VOTED",
			want:  verdict{Offered: 2, Accepted: 1, Lost: 1, LostOtherRow: 1}},
		{name: "second vote refused after an accepted first",
			reqs: []req{{"a", 202, "", r1, id.ID{}}, {"b", 409, "ALREADY_VOTED", id.ID{}, id.ID{}}},
			row:  &voteRow{RequestID: r1, VoteID: v1, IdempotencyKey: "a"},
			want: verdict{Offered: 2, Accepted: 1, Counted: 1}},
		{name: "first request refused ALREADY_VOTED with no row: locked out",
			reqs: []req{{"a", 409, "ALREADY_VOTED", id.ID{}, id.ID{}}},
			want: verdict{Offered: 1, LockedOut: 1}},
		{name: "refused after an unanswered request that was durably queued: not locked out",
			reqs: []req{{"a", 0, "", id.ID{}, id.ID{}}, {"b", 409, "ALREADY_VOTED", id.ID{}, id.ID{}}},
			row:  &voteRow{RequestID: r1, VoteID: v1, IdempotencyKey: "a"},
			want: verdict{Offered: 2}},
		{name: "a retry refused ALREADY_VOTED for its own row: locked out",
			reqs: []req{{"a", 409, "ALREADY_VOTED", id.ID{}, id.ID{}}},
			row:  &voteRow{RequestID: r1, VoteID: v1, IdempotencyKey: "a"},
			want: verdict{Offered: 1, LockedOut: 1, LockedOutOwnRow: 1}},
		{name: "two 200s with different votes: duplicated, and one lost",
			reqs: []req{{"a", 200, "", r1, v1}, {"b", 200, "", r2, v2}},
			row:  &voteRow{RequestID: r1, VoteID: v1, IdempotencyKey: "a"},
			want: verdict{Offered: 2, Accepted: 2, Counted: 1, Lost: 1, LostOtherRow: 1, Duplicated: 1}},
		{name: "a row from a request never sent", reqs: []req{{"a", 0, "", id.ID{}, id.ID{}}},
			row: &voteRow{RequestID: r1, VoteID: v1, IdempotencyKey: "zzz"}, want: verdict{Offered: 1}, problem: true},
		{name: "options race: accepted, failed with a clear code", reqs: []req{{"a", 202, "", r1, id.ID{}}},
			excuse: true, want: verdict{Offered: 1, Accepted: 1, Excused: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := &ledger{}
			vo := &voter{id: id.New(), poll: poll}
			excused := map[*request]bool{}
			states := map[*request]string{}
			for i, q := range c.reqs {
				r := &request{poll: poll, voter: vo, key: q.key, status: q.status, code: q.code}
				if q.requestID != (id.ID{}) {
					r.requestID = q.requestID.String()
				}
				if q.voteI != (id.ID{}) {
					r.voteID = q.voteI.String()
				}
				l.add(r)
				if i == 0 && c.excuse {
					excused[r] = true
				}
				if i == len(c.reqs)-1 && c.state != "" {
					states[r] = c.state
				}
			}
			rows := map[pv]*voteRow{}
			if c.row != nil {
				row := *c.row
				row.PollID, row.VoterID = poll, vo.id
				rows[pv{poll, vo.id}] = &row
			}
			got := account(l, rows, states, excused)
			if (len(got.Problems) > 0) != c.problem {
				t.Fatalf("problems %v, want problem=%v", got.Problems, c.problem)
			}
			got.Problems, got.LostStates = nil, nil
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}
