package poll

import (
	"reflect"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

// A retry rebuilds the poll of a dead first attempt from the request and the
// claim alone, so the same request under the same claim must make the same
// poll, option ids included; another poll id must give other option ids.
func TestNewPollIsDeterministicUnderAClaim(t *testing.T) {
	t0 := time.Date(2026, 4, 5, 10, 0, 0, 0, time.UTC)
	end := t0.Add(time.Hour)
	last := 9
	in := CreateInput{Title: "lunch", Description: "where", EndTime: &end,
		Options:  []OptionInput{{Text: " pizza ", DisplayOrder: &last}, {Text: "soup"}, {Text: "salad"}},
		Settings: Settings{AllowMultipleOptions: true, MaxVotesPerUser: 2}}
	creator := id.New()
	c := CreateClaim{PollID: id.New(), Fingerprint: in.fingerprint(), CreatedAt: t0, CounterShards: 8,
		IndexBuckets: 4}
	a, err := newPoll(creator, in, c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newPoll(creator, in, c)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same request and claim, different polls:\n%+v\n%+v", a, b)
	}
	if a.ID != c.PollID || !a.CreatedAt.Equal(t0) || !a.StartTime.Equal(t0) || !a.UpdatedAt.Equal(t0) ||
		a.CounterShards != 8 || a.IndexBuckets != 4 {
		t.Fatalf("poll does not carry the claim: %+v", a)
	}
	seen := map[id.ID]bool{}
	for _, o := range a.Options {
		if seen[o.ID] {
			t.Fatalf("option id %s twice", o.ID)
		}
		seen[o.ID] = true
	}
	// Sorted by display order, ids still follow the request's index.
	if a.Options[0].Text != "soup" || a.Options[0].ID != OptionID(c.PollID, 1) || a.Options[2].Text != "pizza" ||
		a.Options[2].ID != OptionID(c.PollID, 0) {
		t.Fatalf("options: %+v", a.Options)
	}
	other := c
	other.PollID = id.New()
	o, err := newPoll(creator, in, other)
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range o.Options {
		if seen[opt.ID] {
			t.Fatalf("option id %s shared by two polls", opt.ID)
		}
	}
}

func TestCreateClaimRebuildable(t *testing.T) {
	full := CreateClaim{PollID: id.New(), Fingerprint: "f", CreatedAt: time.Unix(1, 0), CounterShards: 1,
		IndexBuckets: 1}
	tests := []struct {
		name string
		edit func(*CreateClaim)
		want bool
	}{
		{"complete", func(*CreateClaim) {}, true},
		{"no fingerprint (before migration 007)", func(c *CreateClaim) { c.Fingerprint = "" }, false},
		{"no creation time", func(c *CreateClaim) { c.CreatedAt = time.Time{} }, false},
		{"no counter shards (before migration 009)", func(c *CreateClaim) { c.CounterShards = 0 }, false},
		{"no index buckets (before migration 009)", func(c *CreateClaim) { c.IndexBuckets = 0 }, false},
	}
	for _, tc := range tests {
		c := full
		tc.edit(&c)
		if got := c.rebuildable(); got != tc.want {
			t.Errorf("%s: rebuildable = %v, want %v", tc.name, got, tc.want)
		}
	}
}
