package audit

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

var (
	testPoll  = id.ID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	testActor = id.ID{16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	testAt    = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
)

// chainOf links n entries of testPoll.
func chainOf(n int) []Entry {
	var (
		out  []Entry
		head Head
	)
	for i := range n {
		e := Link(head, testPoll, testAt.Add(time.Duration(i)*time.Second), PollUpdated, testActor,
			[]byte(fmt.Sprintf(`{"n":%d}`, i)))
		out = append(out, e)
		head = Head{Seq: e.Seq, Hash: e.Hash}
	}
	return out
}

// A known entry's hash, computed by hand from the documented encoding, pins
// the encoding: changing it would orphan every stored chain.
func TestCanonicalPinned(t *testing.T) {
	var want bytes.Buffer
	want.Write([]byte{0, 0, 0, 20})
	want.WriteString("tally.audit.chain.v1")
	want.Write(testPoll[:])
	want.Write([]byte{0, 0, 0, 0, 0, 0, 0, 1})
	ms := testAt.UnixMilli()
	for i := 7; i >= 0; i-- {
		want.WriteByte(byte(ms >> (8 * i)))
	}
	want.Write([]byte{0, 0, 0, 12})
	want.WriteString("poll.created")
	want.Write(testActor[:])
	want.Write([]byte{0, 0, 0, 2})
	want.WriteString("{}")
	want.Write([]byte{0, 0, 0, 32})
	want.Write(make([]byte, 32))
	got := Canonical(testPoll, 1, testAt, PollCreated, testActor, []byte("{}"), Genesis())
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("canonical encoding\n got %x\nwant %x", got, want.Bytes())
	}
	e := Link(Head{}, testPoll, testAt.Add(400*time.Microsecond), PollCreated, testActor, []byte("{}"))
	if !e.At.Equal(testAt) || e.Seq != 1 || !bytes.Equal(e.PrevHash, Genesis()) {
		t.Fatalf("first link %+v", e)
	}
	if !bytes.Equal(e.Hash, ComputeHash(e)) || len(e.Hash) != HashSize {
		t.Fatalf("hash %x", e.Hash)
	}
}

// Every field the hash covers changes it.
func TestHashCoversEveryField(t *testing.T) {
	base := chainOf(2)[1]
	for name, edit := range map[string]func(*Entry){
		"poll":   func(e *Entry) { e.PollID = id.ID{9} },
		"seq":    func(e *Entry) { e.Seq++ },
		"at":     func(e *Entry) { e.At = e.At.Add(time.Millisecond) },
		"kind":   func(e *Entry) { e.Kind = PollClosed },
		"actor":  func(e *Entry) { e.ActorID = id.ID{} },
		"detail": func(e *Entry) { e.Detail = []byte(`{"n":2}`) },
		"prev":   func(e *Entry) { e.PrevHash = Genesis() },
		// Moving bytes between adjacent variable fields must not collide.
		"kind/detail boundary": func(e *Entry) { e.Kind, e.Detail = e.Kind+"{", e.Detail[1:] },
	} {
		t.Run(name, func(t *testing.T) {
			e := base
			e.Detail = append([]byte(nil), base.Detail...)
			edit(&e)
			if bytes.Equal(ComputeHash(e), base.Hash) {
				t.Fatalf("hash unchanged after editing %s", name)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	anchorOf := func(c []Entry) *Head { h := HeadOf(c); return &h }
	cases := []struct {
		name   string
		chain  func() []Entry
		anchor func(full []Entry) *Head
		badSeq int64 // 0: the chain verifies
		reason string
	}{
		{name: "empty", chain: func() []Entry { return nil }},
		{name: "valid", chain: func() []Entry { return chainOf(5) }},
		{name: "valid with its anchor", chain: func() []Entry { return chainOf(5) }, anchor: anchorOf},
		{name: "valid past an older anchor", chain: func() []Entry { return chainOf(5) },
			anchor: func(full []Entry) *Head { h := HeadOf(full[:3]); return &h }},
		{name: "edited detail", chain: func() []Entry {
			c := chainOf(5)
			c[2].Detail = []byte(`{"n":99}`)
			return c
		}, badSeq: 3, reason: "edited"},
		{name: "edited detail with its hash recomputed", chain: func() []Entry {
			c := chainOf(5)
			c[2].Detail = []byte(`{"n":99}`)
			c[2].Hash = ComputeHash(c[2])
			return c
		}, badSeq: 4, reason: "prev_hash"},
		{name: "edited actor", chain: func() []Entry {
			c := chainOf(3)
			c[0].ActorID = id.ID{7}
			return c
		}, badSeq: 1, reason: "edited"},
		{name: "deleted middle", chain: func() []Entry {
			c := chainOf(5)
			return append(c[:2:2], c[3:]...)
		}, badSeq: 3, reason: "missing"},
		{name: "deleted first", chain: func() []Entry { return chainOf(5)[1:] }, badSeq: 1, reason: "missing"},
		{name: "deleted middle, the rest renumbered", chain: func() []Entry {
			c := chainOf(5)
			c = append(c[:2:2], c[3:]...)
			for i := range c {
				c[i].Seq = int64(i) + 1
			}
			return c
		}, badSeq: 3, reason: "prev_hash"},
		{name: "deleted last, no anchor (undetectable alone)", chain: func() []Entry { return chainOf(5)[:4] }},
		{name: "deleted last, anchored", chain: func() []Entry { return chainOf(5)[:4] },
			anchor: func([]Entry) *Head { return anchorOf(chainOf(5)) }, badSeq: 5, reason: "anchored"},
		{name: "last replaced by a forged link, anchored", chain: func() []Entry {
			c := chainOf(5)
			c[4] = Link(HeadOf(c[:4]), testPoll, testAt, PollClosed, testActor, []byte(`{}`))
			return c
		}, anchor: func([]Entry) *Head { return anchorOf(chainOf(5)) }, badSeq: 5, reason: "anchored"},
		{name: "repeated entry", chain: func() []Entry {
			c := chainOf(3)
			return append(c[:2:2], c[1], c[2])
		}, badSeq: 2, reason: "repeated"},
		{name: "entry of another poll", chain: func() []Entry {
			c := chainOf(2)
			c[1].PollID = id.ID{42}
			return c
		}, badSeq: 2, reason: "belongs to poll"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.chain()
			var anchor *Head
			if tc.anchor != nil {
				anchor = tc.anchor(chainOf(5))
			}
			head, err := Verify(testPoll, c, anchor)
			if tc.badSeq == 0 {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				if want := HeadOf(c); head.Seq != want.Seq || !bytes.Equal(head.Hash, want.Hash) {
					t.Fatalf("head %v, want %v", head, want)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) || !errors.Is(err, ErrChainBroken) {
				t.Fatalf("verify: %v, want a ChainError", err)
			}
			if ce.Seq != tc.badSeq || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("verify: %v, want seq %d (%s)", err, tc.badSeq, tc.reason)
			}
		})
	}
}

func TestParseHead(t *testing.T) {
	h := HeadOf(chainOf(3))
	got, err := ParseHead(h.String())
	if err != nil || got.Seq != 3 || !bytes.Equal(got.Hash, h.Hash) {
		t.Fatalf("round trip %v: %v, %v", h, got, err)
	}
	for _, bad := range []string{"", "3", "x:" + hex.EncodeToString(h.Hash), "0:" + hex.EncodeToString(h.Hash),
		"3:zz", "3:abcd"} {
		if _, err := ParseHead(bad); err == nil {
			t.Errorf("ParseHead(%q) accepted", bad)
		}
	}
}
