package tally

import (
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/tally-vote/tally/pkg/poll"
)

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
