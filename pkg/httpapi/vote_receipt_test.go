package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/anonaccess"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/vote"
)

// memVotes keeps ballots one per voter, written if absent, as the votes
// table does; counters, index and fence accept everything.
type memVotes struct {
	mu   sync.Mutex
	rows map[id.ID]*vote.Ballot
}

func (m *memVotes) Insert(_ context.Context, b *vote.Ballot) (bool, *vote.Ballot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.rows[b.VoterID]; ok {
		c := *old
		return false, &c, nil
	}
	c := *b
	m.rows[b.VoterID] = &c
	return true, nil, nil
}

func (m *memVotes) Get(_ context.Context, _, voterID id.ID) (*vote.Ballot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.rows[voterID]; ok {
		c := *b
		return &c, nil
	}
	return nil, vote.ErrNoVote
}

func (m *memVotes) Index(context.Context, id.ID, int, []*vote.Ballot) error { return nil }
func (m *memVotes) Indexed(context.Context, *vote.Ballot, int) (bool, error) {
	return true, nil
}
func (m *memVotes) Add(context.Context, *poll.Poll, int, [][]id.ID, [][]int) error { return nil }
func (m *memVotes) Enter(context.Context, []id.ID) (func(), error)                 { return func() {}, nil }

type acceptedNever struct{}

func (acceptedNever) Accepted(context.Context, id.ID, id.ID, id.ID) (bool, error) { return false, nil }

// TestVoteAnswersCarryReceipts: the sync 200 carries a receipt and the salt
// that opens it, in the document's VoteRecorded shape; a replay with the
// same Idempotency-Key carries the same receipt and no salt; the request
// status carries the receipt (RequestStatus) and never a salt.
func TestVoteAnswersCarryReceipts(t *testing.T) {
	now := func() time.Time { return rigNow }
	ring, err := receipt.ParseKeys(receiptSeedForTest)
	if err != nil {
		t.Fatal(err)
	}
	owner, voter := id.New(), id.New()
	p := poll.Poll{ID: id.New(), CreatorID: owner, Title: "p", StartTime: rigNow.Add(-time.Hour), EndTime: rigNow.Add(time.Hour),
		CreatedAt: rigNow, UpdatedAt: rigNow, Settings: poll.DefaultSettings, CounterShards: 1, IndexBuckets: 1,
		Options: []poll.Option{{ID: id.New(), Text: "a"}, {ID: id.New(), Text: "b", DisplayOrder: 1}}}
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	log := zap.NewNop()
	tokens := auth.NewTokens(rigSecret, time.Hour, now)
	polls := poll.NewService(poll.Config{CounterShards: 1, IndexBuckets: 1, CacheTTL: time.Hour},
		poll.Deps{Store: pollBoundary{rec: rec, polls: map[id.ID]poll.Poll{p.ID: p}}, Votes: noVotes{},
			Cursors: poll.NewCursors([]byte(rigSecret)), Log: log, Now: now})
	store := &memVotes{rows: map[id.ID]*vote.Ballot{}}
	votes := vote.NewService(vote.Config{Mode: "sync"}, vote.Deps{Store: store, Counter: store, Fence: store, Polls: polls,
		Voters: (*anonaccess.Service)(nil), Log: log, Now: now, Receipts: ring}, reg)
	h, err := NewRouter(Deps{Log: log, Registry: reg, Now: now, PublicURL: "http://tally.test",
		Auth:  auth.NewService(auth.Config{TokenTTL: time.Hour, BcryptCost: 4}, userBoundary{rec}, tokens, log, now),
		Polls: polls, Votes: votes, Statuses: vote.NewStatuses(votes, nil, acceptedNever{}),
		Limiter: ratelimit.New(ratelimit.Config{}, nil, log, now, reg),
		Tally:   tally.NewService(tally.Config{}, nil, nil, nil, nil, log, now, reg), ReceiptKeys: ring})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokens.Issue(auth.Principal{UserID: voter})
	if err != nil {
		t.Fatal(err)
	}
	doc := loadContract(t)
	do := func(method, target, body, schema string) map[string]json.RawMessage {
		t.Helper()
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.RemoteAddr = "127.0.0.1:1234"
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k-1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, target, w.Code, w.Body)
		}
		var raw any
		_ = json.Unmarshal(w.Body.Bytes(), &raw)
		if err := doc.Components.Schemas[schema].Value.VisitJSON(raw); err != nil {
			t.Fatalf("%s does not match %s: %v", w.Body, schema, err)
		}
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(w.Body.Bytes(), &fields)
		return fields
	}
	readReceipt := func(f map[string]json.RawMessage) receipt.Receipt {
		t.Helper()
		var r receipt.Receipt
		if err := json.Unmarshal(f["receipt"], &r); err != nil {
			t.Fatalf("receipt %s: %v", f["receipt"], err)
		}
		if err := ring.Verify(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	path := "/v1/polls/" + p.ID.String() + "/votes"
	body := `{"option_id":"` + p.Options[1].ID.String() + `"}`
	first := do("POST", path, body, "VoteRecorded")
	rc := readReceipt(first)
	var saltText string
	_ = json.Unmarshal(first["salt"], &saltText)
	salt, err := receipt.DecodeSalt(saltText)
	if err != nil {
		t.Fatalf("salt %s: %v", first["salt"], err)
	}
	if err := rc.OpenCommitment(salt, []id.ID{p.Options[1].ID}); err != nil {
		t.Fatal(err)
	}
	if err := rc.OpenCommitment(salt, []id.ID{p.Options[0].ID}); err == nil {
		t.Fatal("the salt opens another choice")
	}
	replay := do("POST", path, body, "VoteRecorded")
	if _, has := replay["salt"]; has {
		t.Fatalf("a replay carries a salt: %s", replay["salt"])
	}
	if again := readReceipt(replay); string(again.Signature) != string(rc.Signature) {
		t.Fatal("a replay's receipt differs")
	}
	var requestID string
	_ = json.Unmarshal(first["request_id"], &requestID)
	st := do("GET", path+"/requests/"+requestID, "", "RequestStatus")
	if _, has := st["salt"]; has {
		t.Fatal("the request status carries a salt")
	}
	if got := readReceipt(st); got.Commitment != rc.Commitment || string(got.Signature) != string(rc.Signature) {
		t.Fatal("the status's receipt differs from the vote's")
	}
}

// receiptSeedForTest is RFC 8032 §7.1 TEST 1's seed.
const receiptSeedForTest = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
