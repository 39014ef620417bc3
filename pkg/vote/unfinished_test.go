package vote

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// entries is an in-memory Unfinished.
type entries struct {
	mu       sync.Mutex
	held     map[[2]id.ID]bool
	failNext error
	begun    int
}

func newEntries() *entries { return &entries{held: map[[2]id.ID]bool{}} }

func (e *entries) Begin(_ context.Context, pollID, voterID id.ID) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.failNext; err != nil {
		e.failNext = nil
		return err
	}
	e.begun++
	e.held[[2]id.ID{pollID, voterID}] = true
	return nil
}

func (e *entries) Done(_ context.Context, pollID, voterID id.ID) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.held, [2]id.ID{pollID, voterID})
	return nil
}

func (e *entries) List(_ context.Context, pollID id.ID) ([]id.ID, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []id.ID
	for k := range e.held {
		if k[0] == pollID {
			out = append(out, k[1])
		}
	}
	return out, nil
}

// storedRecorder is a recorder whose Insert keeps the ballot, so Get finds it.
type storedRecorder struct {
	*recorder
	rows    map[[2]id.ID]*Ballot
	inserts int
}

func (r *storedRecorder) Insert(_ context.Context, b *Ballot) (bool, *Ballot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inserts++
	k := [2]id.ID{b.PollID, b.VoterID}
	if old := r.rows[k]; old != nil {
		return false, old, nil
	}
	r.rows[k] = b
	return true, nil, nil
}

func (r *storedRecorder) Get(_ context.Context, pollID, voterID id.ID) (*Ballot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.rows[[2]id.ID{pollID, voterID}]; b != nil {
		return b, nil
	}
	return nil, ErrNoVote
}

// A direct write keeps its voter's unfinished entry until its ballot is
// indexed; the freeze's Complete indexes what the follow-ups left and
// clears every entry.
func TestRecordKeepsUnfinishedUntilIndexed(t *testing.T) {
	tests := []struct {
		name      string
		failIndex int
		failBegin bool
		// want after Record
		wantErr, wantInsert, wantEntry bool
		wantIndexed                    int // before Complete
	}{
		{name: "follow-ups finish", wantInsert: true, wantIndexed: 1},
		{name: "follow-ups give up", failIndex: 1 << 20, wantInsert: true, wantEntry: true},
		{name: "the entry cannot be written", failBegin: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &storedRecorder{recorder: newRecorder(), rows: map[[2]id.ID]*Ballot{}}
			rec.failIndex = tc.failIndex
			un := newEntries()
			if tc.failBegin {
				un.failNext = errors.New("unavailable")
			}
			s := NewService(Config{Mode: "sync", FollowUpBudget: 200 * time.Millisecond},
				Deps{Store: rec, Counter: rec, Fence: rec, Log: zap.NewNop(), Now: time.Now, Unfinished: un}, prometheus.NewRegistry())
			p := &poll.Poll{ID: id.New(), IndexBuckets: 4, CounterShards: 4}
			b := &Ballot{PollID: p.ID, VoterID: id.New(), VoteID: id.New(), RequestID: id.New(), OptionIDs: []id.ID{id.New()}}
			_, _, err := s.Record(context.Background(), p, b)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Record: %v, want error %v", err, tc.wantErr)
			}
			if (rec.inserts > 0) != tc.wantInsert {
				t.Fatalf("%d inserts, want any: %v (no ballot may be written without its entry)", rec.inserts, tc.wantInsert)
			}
			held, _ := un.List(context.Background(), p.ID)
			if (len(held) > 0) != tc.wantEntry {
				t.Fatalf("entries %v after Record, want one: %v", held, tc.wantEntry)
			}
			if _, indexed := rec.total(); indexed != tc.wantIndexed {
				t.Fatalf("indexed %d after Record, want %d", indexed, tc.wantIndexed)
			}

			// The freeze: the follow-ups are back.
			rec.mu.Lock()
			rec.failIndex = 0
			rec.mu.Unlock()
			n, err := s.Complete(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if held, _ := un.List(context.Background(), p.ID); len(held) != 0 {
				t.Fatalf("entries %v after Complete, want none", held)
			}
			wantRows := 0
			if tc.wantInsert {
				wantRows = 1
			}
			if _, indexed := rec.total(); indexed != wantRows {
				t.Fatalf("indexed %d after Complete (%d by it), want every row indexed (%d)", indexed, n, wantRows)
			}
		})
	}
}

// A refused second request of the voter leaves the entry for the freeze
// (another request sharing it may still be writing its follow-ups), and
// the freeze indexes the ballot that holds, once.
func TestCompleteResolvesARefusedRequest(t *testing.T) {
	rec := &storedRecorder{recorder: newRecorder(), rows: map[[2]id.ID]*Ballot{}}
	un := newEntries()
	s := NewService(Config{Mode: "sync"}, Deps{Store: rec, Counter: rec, Fence: rec, Log: zap.NewNop(), Now: time.Now, Unfinished: un},
		prometheus.NewRegistry())
	p := &poll.Poll{ID: id.New(), IndexBuckets: 4, CounterShards: 4}
	voter := id.New()
	first := &Ballot{PollID: p.ID, VoterID: voter, VoteID: id.New(), RequestID: id.New(), OptionIDs: []id.ID{id.New()}}
	second := &Ballot{PollID: p.ID, VoterID: voter, VoteID: id.New(), RequestID: id.New(), OptionIDs: []id.ID{id.New()}}
	if _, _, err := s.Record(context.Background(), p, first); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Record(context.Background(), p, second); !errors.Is(err, ErrAlreadyVoted) {
		t.Fatalf("second request: %v, want ErrAlreadyVoted", err)
	}
	if held, _ := un.List(context.Background(), p.ID); len(held) != 1 {
		t.Fatalf("entries %v, want the voter's", held)
	}
	if _, err := s.Complete(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if counted, indexed := rec.total(); counted != 1 || indexed != 1 || rec.indexed[voter] != 2 {
		t.Fatalf("counted %d, indexed %d (writes %d); want the first ballot counted once, indexed again idempotently", counted, indexed, rec.indexed[voter])
	}
}
