package vote

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

// TestAppendJSONMatchesEncodingJSON: the votes topic's bytes did not change
// when the message stopped being encoded by reflection. Every field is
// varied through its empty, omitted and awkward values.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 3, 16, 4, 5, 123000000, time.UTC)
	texts := []string{"", "k", "retry-1 ", `quote" back\ <tag>&`, "tab\tnl\n\x00\x1f\x7f", "\u2028\u2029", "é 日本 🗳️",
		"\xff\xfe bad", "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0", "2001:db8::1"}
	times := []time.Time{at, at.Truncate(time.Second), at.Add(1), at.In(time.FixedZone("", 5*3600+1800)),
		at.In(time.FixedZone("", -7*3600)), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), {}}
	base := Message{RequestID: id.New(), VoteID: id.New(), PollID: id.New(), VoterID: id.New(), OptionIDs: []id.ID{id.New()},
		AcceptedAt: at}
	var cases []Message
	add := func(f func(m *Message)) {
		m := base
		f(&m)
		cases = append(cases, m)
	}
	add(func(*Message) {})
	add(func(m *Message) { *m = Message{} })
	for _, s := range texts {
		add(func(m *Message) { m.IdempotencyKey = s })
		add(func(m *Message) { m.IP = s })
		add(func(m *Message) { m.UserAgent = s })
		add(func(m *Message) { m.Device = s })
		add(func(m *Message) { m.HTTPRequestID = s })
		add(func(m *Message) { m.Flags = []string{s} })
		add(func(m *Message) {
			m.IdempotencyKey, m.IP, m.UserAgent, m.Device, m.HTTPRequestID, m.Flags, m.Anonymous = s, s, s, s, s, []string{s, "ip_burst"}, true
		})
	}
	for _, ids := range [][]id.ID{nil, {}, {id.New(), id.New(), {}}} {
		add(func(m *Message) { m.OptionIDs = ids })
	}
	for _, sc := range [][]int{nil, {}, {5}, {0, 3, 5}} {
		add(func(m *Message) { m.Scores = sc })
	}
	for _, c := range [][]byte{nil, {}, {0}, {0xff, 0xfe}, bytes.Repeat([]byte{0xfb, 0xef, 0x3e}, 11)[:32]} {
		add(func(m *Message) { m.Commitment = c })
		add(func(m *Message) { m.Commitment, m.Scores, m.HTTPRequestID = c, []int{1, 2}, "r" })
	}
	for _, fl := range [][]string{nil, {}, {"ip_burst", "device_reuse"}} {
		add(func(m *Message) { m.Flags = fl })
	}
	for _, tm := range times {
		add(func(m *Message) { m.AcceptedAt = tm })
		add(func(m *Message) { m.PollSeenAt = tm })
	}
	for _, v := range []int{0, 1, -1, 7, 1 << 40, -1 << 62} {
		add(func(m *Message) { m.OptionsVersion = v })
		add(func(m *Message) { m.PollVersion = v })
		add(func(m *Message) { m.OptionsVersion, m.PollVersion, m.PollSeenAt, m.Anonymous = v, v+1, at, true })
	}
	add(func(m *Message) {
		*m = FromBallot(&Ballot{PollID: id.New(), VoterID: id.New(), OptionIDs: []id.ID{id.New(), id.New()}, VoteID: id.New(),
			RequestID: id.New(), IdempotencyKey: "key", VotedAt: time.Now().UTC().Truncate(time.Millisecond), Anonymous: true,
			IP: "198.51.100.4", UserAgent: "curl/8.5.0", Device: "3q2+7w==", Flags: []string{"new_account_burst"},
			Commitment: bytes.Repeat([]byte{0xa5}, 32)})
		m.PollSeenAt, m.OptionsVersion, m.PollVersion, m.HTTPRequestID = time.Now(), 3, 12, "6f1c-req"
	})
	for i, m := range cases {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("case %d: encoding/json: %v", i, err)
		}
		got, err := m.AppendJSON([]byte("x"))
		if err != nil || !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("case %d: AppendJSON\n got  %s (%v)\n want %s", i, got, err, want)
		}
	}
	// A time encoding/json cannot write fails the same way.
	for _, bad := range []func(m *Message){
		func(m *Message) { m.AcceptedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		func(m *Message) { m.PollSeenAt = time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		m := base
		bad(&m)
		_, want := json.Marshal(m)
		if _, err := m.AppendJSON(nil); err == nil || want == nil || err.Error() != want.Error() {
			t.Fatalf("AppendJSON error %v, encoding/json %v", err, want)
		}
	}
}

func BenchmarkMessageAppendJSON(b *testing.B) {
	m := FromBallot(&Ballot{PollID: id.New(), VoterID: id.New(), OptionIDs: []id.ID{id.New()}, VoteID: id.New(),
		RequestID: id.New(), VotedAt: time.Now().UTC().Truncate(time.Millisecond), IP: "198.51.100.4", UserAgent: "curl/8.5.0"})
	m.PollSeenAt, m.PollVersion, m.HTTPRequestID = time.Now(), 2, "0f8fad5b-d9cb-469f-a165-70867728950e"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.AppendJSON(make([]byte, 0, 512)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCommitmentTravelsOnTheMessage: the worker writes the commitment the
// API computed, so it survives the topic's encoding both ways, and a
// message without one (receipts off, or produced before them) decodes to
// nil.
func TestCommitmentTravelsOnTheMessage(t *testing.T) {
	b := &Ballot{PollID: id.New(), VoterID: id.New(), OptionIDs: []id.ID{id.New()}, VoteID: id.New(), RequestID: id.New(),
		VotedAt: time.Now().UTC().Truncate(time.Millisecond), Commitment: bytes.Repeat([]byte{0xfe, 0x01}, 16)}
	for _, c := range [][]byte{b.Commitment, nil} {
		b.Commitment = c
		m := FromBallot(b)
		raw, err := m.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Ballot().Commitment, c) || (c == nil) != (got.Commitment == nil) {
			t.Fatalf("commitment %x after the topic, want %x (%s)", got.Commitment, c, raw)
		}
		if c == nil && bytes.Contains(raw, []byte("commitment")) {
			t.Fatalf("absent commitment written: %s", raw)
		}
	}
}
