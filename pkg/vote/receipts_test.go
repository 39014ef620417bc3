package vote

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/receipt"
)

// rowStore keeps ballots the way the votes table does: one per voter,
// written if absent, a loser reading the winner's row.
type rowStore struct {
	*recorder
	mu   sync.Mutex
	rows map[[2]id.ID]*Ballot
}

func newRowStore() *rowStore {
	return &rowStore{recorder: newRecorder(), rows: map[[2]id.ID]*Ballot{}}
}

func (s *rowStore) Insert(_ context.Context, b *Ballot) (bool, *Ballot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]id.ID{b.PollID, b.VoterID}
	if old, ok := s.rows[k]; ok {
		c := *old
		return false, &c, nil
	}
	c := *b
	s.rows[k] = &c
	return true, nil, nil
}

func (s *rowStore) Get(_ context.Context, pollID, voterID id.ID) (*Ballot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.rows[[2]id.ID{pollID, voterID}]; ok {
		c := *b
		return &c, nil
	}
	return nil, ErrNoVote
}

// retryingFlags is the admission for the async path: each request id's
// first Flag admits it fresh, later ones find the flag already theirs.
type retryingFlags struct {
	steps
	seen     map[id.ID]bool
	enqueued []*Ballot
}

func (f *retryingFlags) Flag(_ context.Context, a *Admit) error {
	a.Retry = f.seen[a.Ballot.RequestID]
	f.seen[a.Ballot.RequestID] = true
	return nil
}

func (f *retryingFlags) Enqueue(_ context.Context, _ *poll.Poll, _ time.Time, b *Ballot) error {
	c := *b
	f.enqueued = append(f.enqueued, &c)
	return nil
}

func testRing(t *testing.T) *receipt.Keyring {
	t.Helper()
	kr, err := receipt.ParseKeys(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func receiptPoll(method count.Method) (*poll.Poll, []id.ID) {
	now := time.Now()
	opts := []id.ID{id.New(), id.New()}
	p := &poll.Poll{ID: id.New(), StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour),
		Options: []poll.Option{{ID: opts[0]}, {ID: opts[1]}}, IndexBuckets: 1, CounterShards: 1}
	p.Settings.Method = method
	return p, opts
}

// TestSyncAnswerCarriesReceiptAndSaltOnce: a recorded ballot's 200 has its
// signed receipt and the salt that opens its commitment, choice and scores;
// a replay of the request (same Idempotency-Key) has the same receipt,
// byte for byte, and no salt.
func TestSyncAnswerCarriesReceiptAndSaltOnce(t *testing.T) {
	for _, tc := range []struct {
		method count.Method
		scores []int
	}{{count.Plurality, nil}, {count.Score, []int{5, 2}}} {
		t.Run(string(tc.method), func(t *testing.T) {
			p, opts := receiptPoll(tc.method)
			choice := opts[:1]
			if tc.scores != nil {
				choice = opts
			}
			st := newRowStore()
			kr := testRing(t)
			reg := prometheus.NewRegistry()
			s := NewService(Config{Mode: "sync"}, Deps{Store: st, Counter: st, Fence: st, Polls: &steps{poll: p},
				Log: zap.NewNop(), Now: time.Now, Receipts: kr}, reg)
			req := Request{PollID: p.ID, VoterID: id.New(), OptionIDs: choice, Scores: tc.scores, IdempotencyKey: "k1"}
			first, err := s.Cast(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			r := first.Signed
			if r == nil || len(first.Salt) != receipt.SaltSize {
				t.Fatalf("first answer: receipt %v, salt %d bytes", r, len(first.Salt))
			}
			if err := kr.Verify(r); err != nil {
				t.Fatal(err)
			}
			if r.VoteID != first.Recorded.VoteID || r.PollID != p.ID || r.BallotVersion != 1 ||
				!r.RecordedAt.Equal(first.Recorded.VotedAt) {
				t.Fatalf("receipt %+v for ballot %+v", r, first.Recorded)
			}
			if err := r.OpenBallot(first.Salt, choice, tc.scores); err != nil {
				t.Fatalf("the salt does not open the receipt: %v", err)
			}
			stored, _ := st.Get(context.Background(), p.ID, req.VoterID)
			if !bytes.Equal(stored.Commitment, r.Commitment[:]) {
				t.Fatalf("stored commitment %x, receipt's %x", stored.Commitment, r.Commitment)
			}
			if tc.scores != nil {
				if err := r.OpenBallot(first.Salt, choice, []int{2, 5}); err == nil {
					t.Fatal("other scores open the commitment")
				}
			}
			again, err := s.Cast(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if again.Salt != nil {
				t.Fatal("a replay carries a salt")
			}
			if again.Signed == nil || !bytes.Equal(again.Signed.Signature, r.Signature) || again.Signed.Commitment != r.Commitment {
				t.Fatalf("replay receipt %+v, first %+v", again.Signed, r)
			}
			if testutil.ToFloat64(s.m.receipts.WithLabelValues("recorded")) != 1 || testutil.ToFloat64(s.m.receipts.WithLabelValues("replayed")) != 1 {
				t.Fatal("receipt answers not counted")
			}
		})
	}
}

// TestAsyncSaltOnlyForTheFirstAttempt: the 202 of a request's first
// attempt carries the vote id and the salt that opens the queued ballot's
// commitment; a retry while it is queued (the admission finds the flag
// already the request's) is queued behind it and answers neither: the first
// ballot is the one recorded, and the retry's salt would not open it.
func TestAsyncSaltOnlyForTheFirstAttempt(t *testing.T) {
	p, opts := receiptPoll(count.Plurality)
	st := newRowStore()
	q := &retryingFlags{steps: steps{poll: p, mark: MarkQueued}, seen: map[id.ID]bool{}}
	core, logs := observer.New(zapcore.DebugLevel)
	s := NewService(Config{Mode: "async", LogSample: 1}, Deps{Store: st, Counter: st, Fence: st, Polls: q, Queue: q,
		Flags: q, Admission: q, Log: zap.New(core), Now: time.Now, Receipts: testRing(t)}, prometheus.NewRegistry())
	req := Request{PollID: p.ID, VoterID: id.New(), OptionIDs: opts[:1], IdempotencyKey: "k"}
	first, err := s.Cast(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	queued := q.enqueued[0]
	if first.Recorded != nil || first.Signed != nil || first.VoteID != queued.VoteID || len(first.Salt) != receipt.SaltSize {
		t.Fatalf("202: %+v", first)
	}
	c, _ := receipt.CommitBallot(first.Salt, opts[:1], nil)
	if !bytes.Equal(queued.Commitment, c[:]) {
		t.Fatal("the 202's salt does not open the queued commitment")
	}
	retry, err := s.Cast(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if retry.Salt != nil || retry.VoteID != (id.ID{}) || retry.RequestID != first.RequestID {
		t.Fatalf("a retry's 202: %+v", retry)
	}
	// The worker applies both in order: the first is recorded, the retry
	// replays it; the receipt the status gives opens with the first salt.
	for _, b := range q.enqueued {
		if _, err := s.Apply(context.Background(), p, b); err != nil {
			t.Fatal(err)
		}
	}
	stat, err := NewStatuses(s, nil, q).Get(context.Background(), p.ID, req.VoterID, first.RequestID)
	if err != nil || stat.State != Completed || stat.Receipt == nil {
		t.Fatalf("status %+v %v", stat, err)
	}
	if err := stat.Receipt.OpenCommitment(first.Salt, opts[:1]); err != nil {
		t.Fatalf("the first salt does not open the recorded ballot's receipt: %v", err)
	}
	// Neither the message nor any log line carries the salt.
	encodings := []string{string(first.Salt), hex.EncodeToString(first.Salt), base64.StdEncoding.EncodeToString(first.Salt),
		base64.RawURLEncoding.EncodeToString(first.Salt), base64.RawStdEncoding.EncodeToString(first.Salt)}
	for _, b := range q.enqueued {
		m := FromBallot(b)
		raw, _ := m.AppendJSON(nil)
		for _, e := range encodings {
			if bytes.Contains(raw, []byte(e)) {
				t.Fatalf("the vote message carries the salt: %s", raw)
			}
		}
	}
	if logs.Len() == 0 {
		t.Fatal("no outcome lines written")
	}
	for _, l := range logs.All() {
		line := fmt.Sprintf("%s %v", l.Message, l.ContextMap())
		for _, e := range encodings {
			if bytes.Contains([]byte(line), []byte(e)) {
				t.Fatalf("a log line carries the salt: %s", line)
			}
		}
	}
}

// TestReceiptsOff: no commitment is stored and no answer carries a receipt
// or a salt.
func TestReceiptsOff(t *testing.T) {
	p, opts := receiptPoll(count.Plurality)
	st := newRowStore()
	s := NewService(Config{Mode: "sync"}, Deps{Store: st, Counter: st, Fence: st, Polls: &steps{poll: p},
		Log: zap.NewNop(), Now: time.Now}, prometheus.NewRegistry())
	out, err := s.Cast(context.Background(), Request{PollID: p.ID, VoterID: id.New(), OptionIDs: opts[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if out.Signed != nil || out.Salt != nil || out.Recorded.Commitment != nil {
		t.Fatalf("receipts off: %+v", out)
	}
}

// TestReceiptVersionOfRow: a ballot as first cast signs receipt version 1,
// as receipts issued before changes did; each change moves it by one, and
// RowVersion inverts it.
func TestReceiptVersionOfRow(t *testing.T) {
	for v, want := range []uint32{1, 2, 3} {
		b := &Ballot{Version: v}
		if got := b.ReceiptVersion(); got != want || RowVersion(got) != v {
			t.Errorf("row version %d: receipt version %d (row %d), want %d", v, got, RowVersion(got), want)
		}
	}
	if RowVersion(0) >= 0 {
		t.Error("receipt version 0 names a row version")
	}
}
