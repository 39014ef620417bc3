//go:build integration

package vote_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

// receiptOf reads a receipt from an answer's field, or nil without one.
func receiptOf(t *testing.T, r testenv.Response, field string) *receipt.Receipt {
	t.Helper()
	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.Raw, &body); err != nil {
		t.Fatal(err)
	}
	raw, ok := body[field]
	if !ok {
		return nil
	}
	var rc receipt.Receipt
	if err := json.Unmarshal(raw, &rc); err != nil {
		t.Fatalf("%s: %v (%s)", field, err, raw)
	}
	return &rc
}

// verifyServed checks rc's signature with the key the well-known route
// serves under its kid, the way an outside verifier does.
func verifyServed(t *testing.T, c *testenv.Client, rc *receipt.Receipt) {
	t.Helper()
	r := c.Do("GET", "/.well-known/tally-receipt-keys", "", nil).Must(t, http.StatusOK)
	var set struct {
		Keys []receipt.JWK `json:"keys"`
	}
	if err := json.Unmarshal(r.Raw, &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.KeyID != rc.KeyID {
			continue
		}
		pub, err := receipt.PublicKeyFromJWK(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.VerifyWith(pub); err != nil {
			t.Fatalf("receipt does not verify with the served key %s: %v", k.KeyID, err)
		}
		return
	}
	t.Fatalf("no served key has kid %q: %s", rc.KeyID, r.Raw)
}

// storedCommitments reads the commitment of the voter's votes row and of
// its votes_by_poll row.
func storedCommitments(t *testing.T, a *app.App, pollID, voterID id.ID) (row, index []byte) {
	t.Helper()
	s := a.CQL.Session
	if err := s.Query(`SELECT commitment FROM votes WHERE poll_id = ? AND voter_id = ?`, pollID, voterID).Scan(&row); err != nil {
		t.Fatalf("read votes row: %v", err)
	}
	var buckets int
	if err := s.Query(`SELECT index_buckets FROM polls WHERE poll_id = ?`, pollID).Scan(&buckets); err != nil {
		t.Fatalf("read poll: %v", err)
	}
	// The index row is a follow-up of the row: a request reads completed
	// once the row is written, and its index row may come a moment later.
	b := vote.Bucket(voterID, buckets)
	testenv.Eventually(t, 10*time.Second, func() error {
		if err := s.Query(`SELECT commitment FROM votes_by_poll WHERE poll_id = ? AND bucket = ? AND voter_id = ?`,
			pollID, b, voterID).Scan(&index); err != nil {
			return fmt.Errorf("read votes_by_poll row (bucket %d): %w", b, err)
		}
		return nil
	})
	return row, index
}

// checkReceipt checks everything a voter and an auditor can about one
// ballot: the receipt verifies with the served key, the salt opens it with
// the choice, and both stored rows carry its commitment.
func checkReceipt(t *testing.T, e *env, rc *receipt.Receipt, salt []byte, pollID, voterID, voteID id.ID, choice []id.ID, scores []int) {
	t.Helper()
	verifyServed(t, e.c, rc)
	if rc.PollID != pollID || rc.VoteID != voteID || rc.BallotVersion != 1 {
		t.Fatalf("receipt %+v, want poll %s vote %s version 1", rc, pollID, voteID)
	}
	if err := rc.OpenBallot(salt, choice, scores); err != nil {
		t.Fatalf("the salt does not open the receipt: %v", err)
	}
	row, index := storedCommitments(t, e.app, pollID, voterID)
	if !bytes.Equal(row, rc.Commitment[:]) || !bytes.Equal(index, rc.Commitment[:]) {
		t.Fatalf("stored commitments: votes %x, votes_by_poll %x; receipt %x", row, index, rc.Commitment)
	}
}

func saltOf(t *testing.T, r testenv.Response) []byte {
	t.Helper()
	s, err := receipt.DecodeSalt(r.Str("salt"))
	if err != nil {
		t.Fatalf("salt %q: %v (%s)", r.Str("salt"), err, r.Raw)
	}
	return s
}

func mustID(t *testing.T, s string) id.ID {
	t.Helper()
	u, err := id.Parse(s)
	if err != nil {
		t.Fatalf("id %q: %v", s, err)
	}
	return u
}

// TestReceiptsSync: a sync vote's 200 carries a receipt that verifies with
// the served key and the salt that opens it (a score ballot's scores
// included); both stored rows carry its commitment; a replay with the same
// Idempotency-Key carries the same receipt and no salt.
func TestReceiptsSync(t *testing.T) {
	e := start(t, testenv.Config(t), false)
	owner, _ := e.c.Account()
	for _, method := range []string{"plurality", "score"} {
		t.Run(method, func(t *testing.T) {
			pollID, opts := e.c.Poll(owner, map[string]any{"method": method})
			voter, voterID := e.c.Account()
			body := map[string]any{"option_id": opts[1]}
			choice, scores := []id.ID{mustID(t, opts[1])}, []int(nil)
			if method == "score" {
				body = map[string]any{"scores": []any{map[string]any{"option_id": opts[2], "score": 4},
					map[string]any{"option_id": opts[0], "score": 0}}}
				choice, scores = []id.ID{mustID(t, opts[2]), mustID(t, opts[0])}, []int{4, 0}
			}
			path := "/v1/polls/" + pollID + "/votes"
			first := e.c.Do("POST", path, voter, body, "Idempotency-Key", "sync-1").Must(t, http.StatusOK)
			rc := receiptOf(t, first, "receipt")
			if rc == nil {
				t.Fatalf("no receipt: %s", first.Raw)
			}
			salt := saltOf(t, first)
			checkReceipt(t, e, rc, salt, mustID(t, pollID), mustID(t, voterID), mustID(t, first.Str("vote_id")), choice, scores)
			if method == "score" {
				if err := rc.OpenBallot(salt, choice, []int{0, 4}); err == nil {
					t.Fatal("other scores open the commitment")
				}
			}
			again := e.c.Do("POST", path, voter, body, "Idempotency-Key", "sync-1").Must(t, http.StatusOK)
			if _, has := again.Body["salt"]; has {
				t.Fatalf("a replay carries a salt: %s", again.Raw)
			}
			rc2 := receiptOf(t, again, "receipt")
			if rc2 == nil || rc2.Commitment != rc.Commitment || !bytes.Equal(rc2.Signature, rc.Signature) {
				t.Fatalf("replay's receipt %+v, first %+v", rc2, rc)
			}
		})
	}
}

// votesMessages reads every message of the votes topic.
func votesMessages(t *testing.T, e *env) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := e.cfg.Kafka
	var out [][]byte
	for p := range k.VotesPartitions {
		conn, err := kafka.DialLeader(ctx, "tcp", k.Brokers[0], k.VotesTopic, p)
		if err != nil {
			t.Fatal(err)
		}
		end, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers, Topic: k.VotesTopic, Partition: p, MaxWait: 200 * time.Millisecond})
		for off := int64(0); off < end; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", p, off, err)
			}
			out = append(out, m.Value)
		}
		r.Close()
	}
	return out
}

// TestReceiptsAsync: the 202 carries the vote id and the salt; a retry
// with the same Idempotency-Key while the first is still queued (the worker
// is not running yet) carries neither, and is queued behind it. Once the
// worker drains both, the request status carries the receipt of the first
// ballot, which the 202's salt opens, and both stored rows carry its
// commitment. The raw messages on the votes topic carry commitments and no
// salt; a retry after the ballot is recorded carries no salt either.
func TestReceiptsAsync(t *testing.T) {
	cfg := asyncConfig(t)
	e := start(t, cfg, false)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	voter, voterID := e.c.Account()
	path := "/v1/polls/" + pollID + "/votes"
	body := map[string]any{"option_id": opts[0]}
	choice := []id.ID{mustID(t, opts[0])}

	first := e.c.Do("POST", path, voter, body, "Idempotency-Key", "async-1").Must(t, http.StatusAccepted)
	salt := saltOf(t, first)
	voteID := mustID(t, first.Str("vote_id"))
	requestID := first.Str("request_id")
	queued := e.c.Do("POST", path, voter, body, "Idempotency-Key", "async-1").Must(t, http.StatusAccepted)
	if _, has := queued.Body["salt"]; has || queued.Str("vote_id") != "" || queued.Str("request_id") != requestID {
		t.Fatalf("a retry while queued: %s", queued.Raw)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.app.RunWorker(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	statusPath := fmt.Sprintf("/v1/polls/%s/votes/requests/%s", pollID, requestID)
	var st testenv.Response
	testenv.Eventually(t, 20*time.Second, func() error {
		st = e.c.Do("GET", statusPath, voter, nil).Must(t, http.StatusOK)
		if st.Str("state") != "completed" {
			return fmt.Errorf("state %q", st.Str("state"))
		}
		return nil
	})
	if _, has := st.Body["salt"]; has {
		t.Fatalf("the request status carries a salt: %s", st.Raw)
	}
	rc := receiptOf(t, st, "receipt")
	if rc == nil {
		t.Fatalf("completed status without a receipt: %s", st.Raw)
	}
	checkReceipt(t, e, rc, salt, mustID(t, pollID), mustID(t, voterID), voteID, choice, nil)
	// Every read signs the same receipt.
	if again := receiptOf(t, e.c.Do("GET", statusPath, voter, nil).Must(t, http.StatusOK), "receipt"); again == nil ||
		!bytes.Equal(again.Signature, rc.Signature) {
		t.Fatalf("a second status read: %+v", again)
	}

	// A retry after the ballot is recorded: still no salt.
	late := e.c.Do("POST", path, voter, body, "Idempotency-Key", "async-1")
	if late.Status != http.StatusAccepted && late.Status != http.StatusOK {
		t.Fatalf("a late retry: %d %s", late.Status, late.Raw)
	}
	if _, has := late.Body["salt"]; has {
		t.Fatalf("a late retry carries a salt: %s", late.Raw)
	}

	// The topic: this request's messages carry a commitment, the first one
	// the receipt's, and none carries the salt in any encoding.
	encodings := [][]byte{salt, []byte(hex.EncodeToString(salt)), []byte(base64.StdEncoding.EncodeToString(salt)),
		[]byte(base64.RawStdEncoding.EncodeToString(salt)), []byte(base64.RawURLEncoding.EncodeToString(salt))}
	mine := 0
	for _, raw := range votesMessages(t, e) {
		for _, enc := range encodings {
			if bytes.Contains(raw, enc) {
				t.Fatalf("a votes message carries the salt: %s", raw)
			}
		}
		if bytes.Contains(raw, []byte("salt")) {
			t.Fatalf("a votes message has a salt field: %s", raw)
		}
		m, err := vote.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if m.RequestID.String() != requestID {
			continue
		}
		mine++
		if len(m.Commitment) != receipt.CommitmentSize {
			t.Fatalf("message without a commitment: %s", raw)
		}
		if m.VoteID == voteID && !bytes.Equal(m.Commitment, rc.Commitment[:]) {
			t.Fatalf("the first message's commitment %x, the receipt's %x", m.Commitment, rc.Commitment)
		}
	}
	if mine < 2 {
		t.Fatalf("%d messages of the request on the topic, want the first and its retries", mine)
	}
}
