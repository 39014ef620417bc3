package queue

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/tally-vote/tally/pkg/vote"
)

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
