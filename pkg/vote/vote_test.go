package vote

import (
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

func TestChoose(t *testing.T) {
	a, b, c := id.New(), id.New(), id.New()
	single := &poll.Poll{Options: []poll.Option{{ID: a}, {ID: b}, {ID: c}}}
	multi := &poll.Poll{Options: single.Options, Settings: poll.Settings{AllowMultipleOptions: true, MaxVotesPerUser: 2}}
	ranked := &poll.Poll{Options: single.Options, Settings: poll.Settings{Method: count.Ranked, AllowMultipleOptions: true, MinVotesPerUser: 2}}
	schulze := &poll.Poll{Options: single.Options, Settings: poll.Settings{Method: count.Schulze, AllowMultipleOptions: true}}
	approvalMin := &poll.Poll{Options: single.Options, Settings: poll.Settings{Method: count.Approval, AllowMultipleOptions: true, MinVotesPerUser: 2}}
	plurality := &poll.Poll{Options: single.Options, Settings: poll.Settings{Method: count.Plurality}}
	tests := []struct {
		name string
		p    *poll.Poll
		ids  []id.ID
		want error // nil, ErrInvalidOption, or a *apperr.ValidationError marker
	}{
		{"one of single", single, []id.ID{a}, nil},
		{"none", single, nil, &apperr.ValidationError{}},
		{"two on single", single, []id.ID{a, b}, &apperr.ValidationError{}},
		{"unknown", single, []id.ID{id.New()}, ErrInvalidOption},
		{"two on multi", multi, []id.ID{a, c}, nil},
		{"over max", multi, []id.ID{a, b, c}, &apperr.ValidationError{}},
		{"duplicate", multi, []id.ID{a, a}, &apperr.ValidationError{}},
		{"unknown in multi", multi, []id.ID{a, id.New()}, ErrInvalidOption},
		{"partial ranking", ranked, []id.ID{c, a}, nil},
		{"full ranking", ranked, []id.ID{c, a, b}, nil},
		{"ranking under the minimum", ranked, []id.ID{c}, &apperr.ValidationError{}},
		{"an option ranked twice", ranked, []id.ID{c, a, c}, &apperr.ValidationError{}},
		{"unknown in a ranking", ranked, []id.ID{c, id.New()}, ErrInvalidOption},
		{"schulze takes rankings", schulze, []id.ID{b, a, c}, nil},
		{"approval under the minimum", approvalMin, []id.ID{a}, &apperr.ValidationError{}},
		{"approval at the minimum", approvalMin, []id.ID{a, b}, nil},
		{"plurality by method", plurality, []id.ID{a, b}, &apperr.ValidationError{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Choose(tc.p, tc.ids)
			var ve *apperr.ValidationError
			switch tc.want.(type) {
			case nil:
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
			case *apperr.ValidationError:
				if !errors.As(err, &ve) {
					t.Fatalf("got %v, want validation error", err)
				}
			default:
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			}
		})
	}
}

func TestCheckVoter(t *testing.T) {
	now := time.Now()
	p := &poll.Poll{StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour)}
	if err := CheckVoter(p, false, now); err != nil {
		t.Fatal(err)
	}
	if err := CheckVoter(p, true, now); !errors.Is(err, ErrAnonymousNotAllowed) {
		t.Fatalf("anonymous on accounts-only poll: %v", err)
	}
	if err := CheckVoter(p, false, now.Add(2*time.Hour)); !errors.Is(err, poll.ErrNotActive) {
		t.Fatalf("after end: %v", err)
	}
}

func TestSameRequest(t *testing.T) {
	r1, r2 := id.New(), id.New()
	tests := []struct {
		name string
		a, b Ballot
		want bool
	}{
		{"same request id", Ballot{RequestID: r1}, Ballot{RequestID: r1}, true},
		{"same key", Ballot{RequestID: r1, IdempotencyKey: "k"}, Ballot{RequestID: r2, IdempotencyKey: "k"}, true},
		{"no keys", Ballot{RequestID: r1}, Ballot{RequestID: r2}, false},
		{"different keys", Ballot{RequestID: r1, IdempotencyKey: "k"}, Ballot{RequestID: r2, IdempotencyKey: "j"}, false},
	}
	for _, tc := range tests {
		if got := tc.a.SameRequest(&tc.b); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}

func TestShardAndBucketSpread(t *testing.T) {
	counts := make([]int, 16)
	for range 16000 {
		counts[Shard(id.New(), 16)]++
	}
	for i, n := range counts {
		if n < 700 || n > 1300 {
			t.Fatalf("shard %d got %d of 16000: hash does not spread", i, n)
		}
	}
	v := id.New()
	if Bucket(v, 16) != Bucket(v, 16) {
		t.Fatal("bucket is not stable")
	}
	if Bucket(v, 0) != 0 {
		t.Fatal("zero buckets must map to bucket 0")
	}
}

func TestTextColumn(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"short ascii kept", "curl/8.0", 512, "curl/8.0"},
		{"cut at n", "abcdef", 4, "abcd"},
		{"cut inside a character backs off", "abcé", 4, "abc"},
		{"cut after a character keeps it", "abcé", 5, "abcé"},
		{"cut inside a 4-byte character", "a😀", 3, "a"},
		{"lone 0xC3 replaced", "a\xc3b", 512, "a\uFFFDb"},
		{"invalid then cut", "\xff\xff", 4, "\uFFFD"},
		{"empty", "", 512, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := textColumn(tc.in, tc.n)
			if got != tc.want || !utf8.ValidString(got) || len(got) > tc.n {
				t.Fatalf("textColumn(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}
