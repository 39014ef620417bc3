package dlq_test

import (
	"encoding/json"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/dlq"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/vote"
)

func TestNewEntry(t *testing.T) {
	poll, voter, req := id.New(), id.New(), id.New()
	vote, err := json.Marshal(vote.Message{RequestID: req, VoteID: id.New(), PollID: poll,
		VoterID: voter, OptionIDs: []id.ID{id.New()}})
	if err != nil {
		t.Fatal(err)
	}
	headers := []kafka.Header{{Key: "error", Value: []byte("poll not found")}, {Key: "attempts", Value: []byte("3")},
		{Key: "source", Value: []byte("tally.votes/2/41")}}

	for _, tc := range []struct {
		name    string
		msg     kafka.Message
		key     string
		decoded bool
	}{
		{"vote keyed by voter id bytes", kafka.Message{Key: voter[:], Value: vote, Headers: headers}, voter.String(), true},
		{"text key", kafka.Message{Key: []byte("k1"), Value: vote, Headers: headers}, "k1", true},
		{"binary key", kafka.Message{Key: []byte{0xff, 0x00}, Value: vote, Headers: headers}, "ff00", true},
		{"not json", kafka.Message{Key: []byte("k"), Value: []byte("{oops"), Headers: headers}, "k", false},
		{"json but not a vote", kafka.Message{Key: []byte("k"), Value: []byte(`{"a":1}`), Headers: headers}, "k", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.msg.Partition, tc.msg.Offset = 1, 7
			e := dlq.NewEntry(tc.msg)
			if e.Partition != 1 || e.Offset != 7 || e.Key != tc.key {
				t.Errorf("position/key: %+v", e)
			}
			if e.Error != "poll not found" || e.Attempts != 3 || e.Source != "tally.votes/2/41" {
				t.Errorf("headers: %+v", e)
			}
			if e.Decoded != tc.decoded {
				t.Fatalf("decoded %v, want %v", e.Decoded, tc.decoded)
			}
			if tc.decoded && (*e.PollID != poll || *e.VoterID != voter || *e.RequestID != req) {
				t.Errorf("vote fields: %v %v %v", e.PollID, e.VoterID, e.RequestID)
			}
			if !tc.decoded && (e.PollID != nil || e.VoterID != nil || e.RequestID != nil) {
				t.Errorf("vote fields of an undecodable message: %+v", e)
			}
		})
	}
}
