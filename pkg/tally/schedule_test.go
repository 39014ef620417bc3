package tally

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"go.uber.org/zap"
)

func TestReconcilerDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pending := &memPending{}
	r := NewReconciler(ReconcileConfig{}, ReconcilerDeps{Pending: pending, Log: zap.NewNop(),
		Now: func() time.Time { return now }, Metrics: prometheus.NewRegistry()})
	open := &poll.Poll{ID: id.New(), EndTime: now.Add(time.Hour)}
	ended := &poll.Poll{ID: id.New(), EndTime: now.Add(-time.Minute)}
	ctx := context.Background()
	for range 3 {
		r.Seen(ctx, open)
		r.Seen(ctx, ended)
	}
	due := r.due()
	if due[open.ID] != "scheduled" || due[ended.ID] != "scheduled" || len(due) != 2 {
		t.Fatalf("first round %v", due)
	}
	// Nothing new: a poll is not due again until it gets votes.
	if due := r.due(); len(due) != 0 {
		t.Fatalf("second round %v", due)
	}
	// Each poll's final tally is recorded once, at its end time.
	want := []PendingFinal{{open.ID, open.EndTime}, {ended.ID, ended.EndTime}}
	if !slices.Equal(pending.rows, want) {
		t.Fatalf("pending finals %v, want %v", pending.rows, want)
	}
	// A later end time is recorded again.
	open.EndTime = open.EndTime.Add(time.Hour)
	r.Seen(ctx, open)
	if len(pending.rows) != 3 || pending.rows[2] != (PendingFinal{open.ID, open.EndTime}) {
		t.Fatalf("after the extension %v", pending.rows)
	}
}

// memPending records what Schedule was asked.
type memPending struct{ rows []PendingFinal }

func (m *memPending) Schedule(_ context.Context, f PendingFinal) error {
	m.rows = append(m.rows, f)
	return nil
}
func (m *memPending) Done(context.Context, PendingFinal) error { return nil }
func (m *memPending) Due(context.Context, time.Time) ([]PendingFinal, error) {
	return nil, nil
}
