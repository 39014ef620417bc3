package vote

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

func TestMessageRoundTrip(t *testing.T) {
	b := &Ballot{PollID: id.New(), VoterID: id.New(),
		OptionIDs: []id.ID{id.New()}, VoteID: id.New(),
		RequestID: id.New(), IdempotencyKey: "k", VotedAt: time.Now().UTC().Truncate(time.Millisecond),
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

// TestDecodeMessageFromBeforePollVersion: a worker built after messages
// carried the poll's version still drains those produced before, which
// lack it; they read version 0, which every cached poll satisfies.
func TestDecodeMessageFromBeforePollVersion(t *testing.T) {
	old := `{"request_id":"6a1f0c3e-5b7d-4e7a-9a3c-2d1e0f9b8c7a","vote_id":"0b9c8d7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e",` +
		`"poll_id":"1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f","voter_id":"2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a",` +
		`"option_ids":["3e4f5a6b-7c8d-4e9f-8a1b-2c3d4e5f6a7b"],"accepted_at":"2026-12-01T10:00:00.123Z",` +
		`"poll_seen_at":"2026-12-01T10:00:00.1Z","options_version":2}`
	m, err := Decode([]byte(old))
	if err != nil {
		t.Fatalf("decode a message without poll_version: %v", err)
	}
	if m.PollVersion != 0 || m.OptionsVersion != 2 || m.PollSeenAt.IsZero() {
		t.Fatalf("decoded %+v", m)
	}
	b := &Ballot{PollID: id.New(), VoterID: id.New(),
		OptionIDs: []id.ID{id.New()}, VoteID: id.New(),
		RequestID: id.New(), VotedAt: time.Now().UTC()}
	msg := FromBallot(b)
	msg.PollVersion = 7
	raw, _ := json.Marshal(msg)
	if m, err := Decode(raw); err != nil || m.PollVersion != 7 {
		t.Fatalf("round trip of poll_version: %+v, %v", m, err)
	}
}
