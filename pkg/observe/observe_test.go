package observe

import (
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

func TestActivePollsForgetsIdlePolls(t *testing.T) {
	now := time.Unix(1000, 0)
	a := &ActivePolls{window: time.Minute, now: func() time.Time { return now }, last: map[id.ID]time.Time{}}
	p1, p2 := id.New(), id.New()
	a.Seen(p1)
	a.Seen(p1)
	now = now.Add(40 * time.Second)
	a.Seen(p2)
	if n := a.Count(); n != 2 {
		t.Fatalf("count = %d, want 2", n)
	}
	now = now.Add(30 * time.Second) // p1 idle 70 s, p2 30 s
	if n := a.Count(); n != 1 {
		t.Fatalf("count = %d, want 1 after p1 went idle", n)
	}
}
