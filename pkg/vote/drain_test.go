package vote

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// backlogJSON is a vote message as the API encoded it before the drain
// moved into pkg/vote (queue.Message at e9c05ee, every field set): a
// worker built now must drain a backlog produced then.
const backlogJSON = `{"request_id":"8d3c2a1e-5b7f-8a90-b1c2-d3e4f5a6b7c8","vote_id":"3f2504e0-4f89-41d3-9a0c-0305e82c3301",` +
	`"poll_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","voter_id":"1b4e28ba-2fa1-41d2-883f-0016d3cca427",` +
	`"option_ids":["a8098c1a-f86e-41da-9f0b-6c1e2b3d4e5f","c9bf9e57-1685-4c89-bafb-ff5af830be8a"],` +
	`"idempotency_key":"key-1","accepted_at":"2026-12-01T10:00:00.123Z","anonymous":true,"ip":"203.0.113.7",` +
	`"user_agent":"curl/8.5","device":"d3v1c3","flags":["fast_cadence"],"poll_seen_at":"2026-12-01T09:59:58Z",` +
	`"options_version":2,"http_request_id":"req-abc"}`

func mustID(t *testing.T, s string) id.ID {
	t.Helper()
	u, err := id.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// drainFakes stands in for every port of the drain: the ballot store (on
// top of recorder's follow-ups), polls, failures and flags.
type drainFakes struct {
	*recorder
	poll    *poll.Poll
	pollErr error

	mu       sync.Mutex
	inserted []*Ballot
	failures map[id.ID]Failure
	released []id.ID
	dead     []int // attempts of each dead-lettered message
}

func newDrainFakes(p *poll.Poll) *drainFakes {
	return &drainFakes{recorder: newRecorder(), poll: p, failures: map[id.ID]Failure{}}
}

func (f *drainFakes) Insert(_ context.Context, b *Ballot) (bool, *Ballot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inserted = append(f.inserted, b)
	return true, nil, nil
}
func (f *drainFakes) View(context.Context, id.ID) (*poll.Poll, time.Time, error) {
	return nil, time.Time{}, poll.ErrNotFound
}

func (f *drainFakes) FreezeOptions(context.Context, *poll.Poll) error { return nil }

// drainPolls serves the fakes' poll (or its error), cached or fresh.
type drainPolls struct{ *drainFakes }

func (f drainPolls) StableCached(context.Context, id.ID) (*poll.Poll, error) {
	return f.poll, f.pollErr
}
func (f drainPolls) Get(context.Context, id.ID) (*poll.Poll, error) { return f.poll, f.pollErr }
func (f *drainFakes) SaveFailure(_ context.Context, _, _, requestID id.ID, fl Failure) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[requestID] = fl
	return nil
}
func (f *drainFakes) GetFailure(context.Context, id.ID, id.ID, id.ID) (Failure, bool, error) {
	return Failure{}, false, nil
}
func (f *drainFakes) MarkQueued(context.Context, *poll.Poll, *Ballot) (Mark, error) {
	return MarkQueued, nil
}
func (f *drainFakes) MarkRecorded(*poll.Poll, *Ballot) {}
func (f *drainFakes) Accepted(context.Context, id.ID, id.ID, id.ID) (bool, error) {
	return true, nil
}
func (f *drainFakes) Withdraw(ctx context.Context, pollID, voterID, requestID id.ID) error {
	return f.Release(ctx, pollID, voterID, requestID)
}
func (f *drainFakes) Forget(context.Context, id.ID, id.ID, id.ID) error { return nil }
func (f *drainFakes) Release(_ context.Context, _, _, requestID id.ID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, requestID)
	return nil
}

// delivery wraps raw as the transport would, dead-lettering into f.
func (f *drainFakes) delivery(raw []byte) Delivery {
	msg, err := Decode(raw)
	return Delivery{Key: string(msg.VoterID[:]), Message: msg, Err: err,
		DeadLetter: func(_ context.Context, _ error, attempts int) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.dead = append(f.dead, attempts)
			return nil
		}}
}

func newTestDrainer(f *drainFakes) *Drainer {
	s := NewService(Config{Mode: "async"}, Deps{Store: f, Counter: f, Fence: f, Polls: f, Log: zap.NewNop(), Now: time.Now},
		prometheus.NewRegistry())
	return NewDrainer(DrainConfig{PoisonAttempts: 2, MaxBackoff: time.Millisecond}, DrainDeps{
		Polls: drainPolls{f}, Votes: s, Failures: f, Flags: f, Log: zap.NewNop(), Registry: prometheus.NewRegistry()})
}

func backlogPoll(t *testing.T) *poll.Poll {
	return &poll.Poll{ID: mustID(t, "6ba7b810-9dad-11d1-80b4-00c04fd430c8"), OptionsVersion: 2,
		Options: []poll.Option{{ID: mustID(t, "a8098c1a-f86e-41da-9f0b-6c1e2b3d4e5f")},
			{ID: mustID(t, "c9bf9e57-1685-4c89-bafb-ff5af830be8a")}},
		StartTime: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EndTime: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		IndexBuckets: 4, CounterShards: 4}
}

func TestDrainBacklogProducedBeforeTheMove(t *testing.T) {
	// The wire is unchanged both ways: today's encoding of the decoded
	// message is byte for byte the old one.
	msg, err := Decode([]byte(backlogJSON))
	if err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(msg)
	if err != nil || string(again) != backlogJSON {
		t.Fatalf("re-encoded as\n%s\nwant\n%s (%v)", again, backlogJSON, err)
	}

	f := newDrainFakes(backlogPoll(t))
	d := newTestDrainer(f)
	if err := d.Drain(context.Background(), []Delivery{f.delivery([]byte(backlogJSON))}, 4); err != nil {
		t.Fatal(err)
	}
	if len(f.inserted) != 1 || len(f.dead) != 0 {
		t.Fatalf("inserted %d, dead-lettered %v; want the ballot written once", len(f.inserted), f.dead)
	}
	b := f.inserted[0]
	want := Ballot{PollID: f.poll.ID, VoterID: mustID(t, "1b4e28ba-2fa1-41d2-883f-0016d3cca427"),
		VoteID: mustID(t, "3f2504e0-4f89-41d3-9a0c-0305e82c3301"), RequestID: mustID(t, "8d3c2a1e-5b7f-8a90-b1c2-d3e4f5a6b7c8"),
		IdempotencyKey: "key-1", VotedAt: time.Date(2026, 12, 1, 10, 0, 0, 123e6, time.UTC), Anonymous: true,
		IP: "203.0.113.7", UserAgent: "curl/8.5", Device: "d3v1c3"}
	if b.PollID != want.PollID || b.VoterID != want.VoterID || b.VoteID != want.VoteID || b.RequestID != want.RequestID ||
		b.IdempotencyKey != want.IdempotencyKey || !b.VotedAt.Equal(want.VotedAt) || b.Anonymous != want.Anonymous ||
		b.IP != want.IP || b.UserAgent != want.UserAgent || b.Device != want.Device ||
		len(b.OptionIDs) != 2 || len(b.Flags) != 1 || b.Flags[0] != "fast_cadence" {
		t.Fatalf("ballot %+v; want %+v with two options and flag fast_cadence", *b, want)
	}
	if counted, indexed := f.total(); counted != 1 || indexed != 1 {
		t.Fatalf("counted %d, indexed %d; want the follow-ups of the ballot", counted, indexed)
	}
}

// A refused vote (inadmissible as accepted) goes to the DLQ at once; a
// failing one only after PoisonAttempts; either way the request records
// why and the voter's flag is released. A malformed message is poison at
// once.
func TestDrainRefusalVersusPoison(t *testing.T) {
	tests := []struct {
		name         string
		mutate       func(m *Message)
		pollErr      error
		raw          string
		wantAttempts int
		wantCode     apperr.Code
		wantRelease  bool
	}{
		{name: "option the poll lacks is refused", mutate: func(m *Message) { m.OptionIDs = []id.ID{id.New()} },
			wantAttempts: 1, wantCode: ErrInvalidOption.Code, wantRelease: true},
		{name: "options replaced is refused", mutate: func(m *Message) { m.OptionsVersion = 1 },
			wantAttempts: 1, wantCode: poll.ErrOptionsChanged.Code, wantRelease: true},
		{name: "failing is poison after the attempts", pollErr: errors.New("boom"),
			wantAttempts: 2, wantCode: apperr.CodeInternal, wantRelease: true},
		{name: "malformed is poison at once", raw: "{", wantAttempts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newDrainFakes(backlogPoll(t))
			f.pollErr = tc.pollErr
			raw := []byte(tc.raw)
			var msg Message
			if tc.raw == "" {
				msg, _ = Decode([]byte(backlogJSON))
				if tc.mutate != nil {
					tc.mutate(&msg)
				}
				raw, _ = json.Marshal(msg)
			}
			if err := newTestDrainer(f).Drain(context.Background(), []Delivery{f.delivery(raw)}, 1); err != nil {
				t.Fatal(err)
			}
			if len(f.inserted) != 0 || len(f.dead) != 1 || f.dead[0] != tc.wantAttempts {
				t.Fatalf("inserted %d, dead-lettered after %v attempts; want none and %d", len(f.inserted), f.dead, tc.wantAttempts)
			}
			if !tc.wantRelease {
				if len(f.released) != 0 || len(f.failures) != 0 {
					t.Fatalf("released %v, failures %v for a message without a request", f.released, f.failures)
				}
				return
			}
			if got := f.failures[msg.RequestID]; got.Code != tc.wantCode.String() {
				t.Fatalf("failure %+v; want code %s", got, tc.wantCode)
			}
			if len(f.released) != 1 || f.released[0] != msg.RequestID {
				t.Fatalf("released %v; want the request's flag", f.released)
			}
		})
	}
}

// revokedStore holds one voter's ballot as the row has it.
type revokedStore struct {
	*drainFakes
	b *Ballot
}

func (r revokedStore) Get(context.Context, id.ID, id.ID) (*Ballot, error) { return r.b, nil }

// A revoke's status says completed only with the voter's flag free: a
// worker killed between the revoke's write and its release left the flag
// held, and a vote cast on that "completed" was refused ALREADY_VOTED
// (TestChangesAndRevokesWhileTheWorkerIsKilled). The status read releases
// the flag of the request that cast the revoked ballot, and nothing once
// the voter has voted again.
func TestRevokeStatusFreesTheFlag(t *testing.T) {
	p := &poll.Poll{ID: id.New(), Settings: poll.Settings{AllowVoteChange: true}}
	cast, revoke, again := id.New(), id.New(), id.New()
	for _, tc := range []struct {
		name     string
		b        *Ballot
		asked    id.ID
		released []id.ID
	}{
		{name: "revoked: the caster's flag is released", asked: revoke, released: []id.ID{cast},
			b: &Ballot{PollID: p.ID, RequestID: cast, Version: 1, Revoked: true,
				Changes: map[id.ID]ChangeOutcome{revoke: {Kind: KindRevoked, Version: 1}}}},
		{name: "voted again since: nothing released", asked: revoke,
			b: &Ballot{PollID: p.ID, RequestID: cast, Version: 2,
				Changes: map[id.ID]ChangeOutcome{revoke: {Kind: KindRevoked, Version: 1}, again: {Kind: KindRecast, Version: 2}}}},
		{name: "the first vote's status: nothing released", asked: cast,
			b: &Ballot{PollID: p.ID, RequestID: cast}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newDrainFakes(p)
			s := NewService(Config{Mode: "async"}, Deps{Store: revokedStore{f, tc.b}, Counter: f, Fence: f,
				Flags: f, Log: zap.NewNop(), Now: time.Now}, prometheus.NewRegistry())
			st, err := NewStatuses(s, f, f).Get(context.Background(), p.ID, id.New(), tc.asked)
			if err != nil || st.State != Completed {
				t.Fatalf("status %+v, %v; want completed", st, err)
			}
			if len(f.released) != len(tc.released) || (len(tc.released) > 0 && f.released[0] != tc.released[0]) {
				t.Fatalf("released %v; want %v", f.released, tc.released)
			}
		})
	}
}
