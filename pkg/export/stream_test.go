package export

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/vote"
)

func TestPollKeyPseudonyms(t *testing.T) {
	secret := []byte("server-secret-0123456789abcdef")
	p1, p2, voter := id.New(), id.New(), id.New()
	k1, k2 := PollKey(secret, p1), PollKey(secret, p2)
	if !bytes.Equal(k1, PollKey(secret, p1)) || Pseudonym(k1, voter) != Pseudonym(PollKey(secret, p1), voter) {
		t.Fatal("a poll's pseudonym is not stable")
	}
	if Pseudonym(k1, voter) == Pseudonym(k2, voter) {
		t.Fatal("one voter has one pseudonym in two polls: their exports could be joined")
	}
	if Pseudonym(k1, voter) == Pseudonym(secret, voter) {
		t.Fatal("an owner pseudonym equals the operator export's pseudonym under the same secret")
	}
	if bytes.Equal(k1, PollKey([]byte("another-secret-0123456789abcdef"), p1)) {
		t.Fatal("two secrets give one poll key")
	}
	if len(k1) < MinKeyBytes {
		t.Fatalf("poll key of %d bytes", len(k1))
	}
}

func TestCoarsen(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 59, 999e6, time.FixedZone("x", 3600))
	if got, want := Coarsen(at, VotedAtGrain), time.Date(2026, 3, 4, 4, 6, 0, 0, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
		t.Fatalf("Coarsen = %v, want %v", got, want)
	}
	if got := Coarsen(at, 0); !got.Equal(at) {
		t.Fatalf("grain 0 changed the time: %v", got)
	}
}

// fakeSource serves ballots from memory (unit test; the integration tests
// read Cassandra).
type fakeSource struct {
	buckets map[int][]vote.Ballot
	failAt  int // bucket whose read fails, -1 none
	read    []int
}

func (f *fakeSource) Plan(context.Context, int) []scan.Range { return nil }
func (f *fakeSource) Range(context.Context, scan.Range, scan.Consistency, func(vote.Ballot) error) error {
	return nil
}
func (f *fakeSource) Buckets(context.Context, id.ID) (int, error) { return len(f.buckets), nil }
func (f *fakeSource) Bucket(_ context.Context, _ id.ID, b int, _ scan.Consistency, fn func(vote.Ballot) error) (int64, error) {
	f.read = append(f.read, b)
	if b == f.failAt {
		return 0, errors.New("cassandra down")
	}
	for _, r := range f.buckets[b] {
		if err := fn(r); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

func ballots(pollID id.ID, n int) []vote.Ballot {
	out := make([]vote.Ballot, n)
	for i := range out {
		out[i] = vote.Ballot{PollID: pollID, VoterID: id.New(), VoteID: id.New(), RequestID: id.New(),
			OptionIDs: []id.ID{id.New()}, VotedAt: time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC),
			IP: "203.0.113.7", UserAgent: "secret-agent/1.0", Device: "device-hash", Flags: []string{"headless"},
			IdempotencyKey: "idem-key"}
	}
	return out
}

func TestStreamCSV(t *testing.T) {
	pollID := id.New()
	src := &fakeSource{buckets: map[int][]vote.Ballot{0: ballots(pollID, 3), 1: ballots(pollID, 2)}, failAt: -1}
	key := PollKey([]byte("server-secret-0123456789abcdef"), pollID)
	m := NewMetrics(prometheus.NewRegistry())
	var out bytes.Buffer
	flushes := 0
	rows, _, err := Stream(context.Background(), src, m, StreamOptions{Poll: pollID, Buckets: 2, Format: CSV, Key: key,
		Grain: VotedAtGrain, Label: "owner"}, &out, func() { flushes++ })
	if err != nil || rows != 5 || flushes != 2 {
		t.Fatalf("rows %d flushes %d err %v, want 5 rows, a flush per bucket", rows, flushes, err)
	}
	for _, secret := range []string{"203.0.113.7", "secret-agent", "device-hash", "headless", "idem-key"} {
		if strings.Contains(out.String(), secret) {
			t.Fatalf("export carries %q:\n%s", secret, out.String())
		}
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != strings.Join(baseColumns, ",") || len(recs) != 6 {
		t.Fatalf("header %v and %d lines", recs[0], len(recs))
	}
	all := append(src.buckets[0], src.buckets[1]...)
	for i, r := range recs[1:] {
		b := all[i]
		if r[1] != Pseudonym(key, b.VoterID) || strings.Contains(r[1], b.VoterID.String()) {
			t.Fatalf("voter %q, want the poll's pseudonym", r[1])
		}
		if r[4] != "2026-01-02T03:04:00.000Z" {
			t.Fatalf("voted_at %q, want it to the minute", r[4])
		}
		if r[2] != b.VoteID.String() || r[3] != b.OptionIDs[0].String() {
			t.Fatalf("row %v for ballot %+v", r, b)
		}
	}
	if got := testutil.ToFloat64(m.rows.WithLabelValues("owner")); got != 5 {
		t.Fatalf("rows metric %v", got)
	}
}

func TestStreamJSONL(t *testing.T) {
	pollID := id.New()
	src := &fakeSource{buckets: map[int][]vote.Ballot{0: ballots(pollID, 2)}, failAt: -1}
	var out bytes.Buffer
	rows, _, err := Stream(context.Background(), src, nil, StreamOptions{Poll: pollID, Buckets: 1, Format: JSONL,
		Key: PollKey([]byte("s-0123456789abcdef"), pollID), Grain: VotedAtGrain}, &out, nil)
	if err != nil || rows != 2 {
		t.Fatalf("rows %d err %v", rows, err)
	}
	dec := json.NewDecoder(&out)
	for range 2 {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["ip"]; ok {
			t.Fatalf("jsonl line carries ip: %v", m)
		}
		if m["voted_at"] != "2026-01-02T03:04:00Z" {
			t.Fatalf("voted_at %v", m["voted_at"])
		}
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	w.n++
	return 0, errors.New("client went away")
}

func TestStreamStops(t *testing.T) {
	pollID := id.New()
	key := PollKey([]byte("s-0123456789abcdef"), pollID)
	// A writer that fails (the client went away) stops the scan: the
	// buckets after it are never read.
	src := &fakeSource{buckets: map[int][]vote.Ballot{0: ballots(pollID, 1), 1: ballots(pollID, 1), 2: ballots(pollID, 1)}, failAt: -1}
	if _, _, err := Stream(context.Background(), src, nil, StreamOptions{Poll: pollID, Buckets: 3, Format: CSV, Key: key},
		&failWriter{}, nil); err == nil || len(src.read) != 1 {
		t.Fatalf("err %v after reading buckets %v, want an error after the first", err, src.read)
	}
	// A cancelled context stops it before the next bucket.
	src = &fakeSource{buckets: map[int][]vote.Ballot{0: ballots(pollID, 1), 1: ballots(pollID, 1)}, failAt: -1}
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	if _, _, err := Stream(ctx, src, nil, StreamOptions{Poll: pollID, Buckets: 2, Format: CSV, Key: key}, &out,
		cancel); !errors.Is(err, context.Canceled) || len(src.read) != 1 {
		t.Fatalf("err %v after reading buckets %v", err, src.read)
	}
	// A read error before anything was written leaves w untouched, so the
	// caller can still answer with an error status.
	src = &fakeSource{buckets: map[int][]vote.Ballot{0: ballots(pollID, 1)}, failAt: 0}
	out.Reset()
	if _, _, err := Stream(context.Background(), src, nil, StreamOptions{Poll: pollID, Buckets: 1, Format: CSV, Key: key},
		&out, nil); err == nil || out.Len() != 0 {
		t.Fatalf("err %v with %d bytes written", err, out.Len())
	}
	// Parquet and short keys are refused.
	if _, _, err := Stream(context.Background(), src, nil, StreamOptions{Format: Parquet, Key: key}, &out, nil); err == nil {
		t.Fatal("parquet streamed")
	}
	if _, _, err := Stream(context.Background(), src, nil, StreamOptions{Format: CSV, Key: key[:8]}, &out, nil); err == nil {
		t.Fatal("short key accepted")
	}
}
