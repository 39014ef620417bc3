package ingest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/vote"
)

func TestRequestID(t *testing.T) {
	p, v := gocql.MustRandomUUID(), gocql.MustRandomUUID()
	a, b := RequestID(p, v, "key"), RequestID(p, v, "key")
	if a != b {
		t.Fatal("same poll, voter and key must give the same request id")
	}
	if a.Version() != 5 || a.Variant() != gocql.VariantIETF {
		t.Fatalf("not a v5 UUID: %s", a)
	}
	for name, other := range map[string]gocql.UUID{
		"other key":   RequestID(p, v, "key2"),
		"other voter": RequestID(p, gocql.MustRandomUUID(), "key"),
		"other poll":  RequestID(gocql.MustRandomUUID(), v, "key"),
		"no key":      RequestID(p, v, ""),
	} {
		if other == a {
			t.Errorf("%s gave the same id", name)
		}
	}
	if RequestID(p, v, "") == RequestID(p, v, "") {
		t.Error("requests without a key must get fresh ids")
	}
}

func TestMessageRoundTrip(t *testing.T) {
	b := &vote.Ballot{PollID: gocql.MustRandomUUID(), VoterID: gocql.MustRandomUUID(),
		OptionIDs: []gocql.UUID{gocql.MustRandomUUID()}, VoteID: gocql.MustRandomUUID(),
		RequestID: gocql.MustRandomUUID(), IdempotencyKey: "k", VotedAt: time.Now().UTC().Truncate(time.Millisecond),
		Anonymous: true, IP: "127.0.0.1", UserAgent: "test"}
	raw, _ := json.Marshal(FromBallot(b))
	m, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Ballot()
	if got.VoteID != b.VoteID || got.RequestID != b.RequestID || !got.VotedAt.Equal(b.VotedAt) || got.IdempotencyKey != "k" {
		t.Fatalf("round trip lost data: %+v", got)
	}
	for name, bad := range map[string]string{
		"not json":   "{",
		"no options": `{"request_id":"` + b.RequestID.String() + `","vote_id":"` + b.VoteID.String() + `","poll_id":"` + b.PollID.String() + `","voter_id":"` + b.VoterID.String() + `"}`,
		"no ids":     `{"option_ids":["` + b.VoteID.String() + `"]}`,
	} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestReconcilerDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := NewReconciler(ReconcileConfig{}, nil, nil, nil, nil, nil, func() time.Time { return now })
	open := &poll.Poll{ID: gocql.MustRandomUUID(), EndTime: now.Add(time.Hour)}
	ended := &poll.Poll{ID: gocql.MustRandomUUID(), EndTime: now.Add(-time.Minute)}
	r.Seen(open)
	r.Seen(ended)
	due := r.due()
	if due[open.ID] != "scheduled" || due[ended.ID] != "closed" {
		t.Fatalf("first round %v", due)
	}
	// Nothing new: the open poll is not due again until it gets votes or ends.
	if due := r.due(); len(due) != 0 {
		t.Fatalf("second round %v", due)
	}
	now = now.Add(2 * time.Hour)
	if due := r.due(); due[open.ID] != "closed" || len(due) != 1 {
		t.Fatalf("after the open poll ended %v", due)
	}
}
