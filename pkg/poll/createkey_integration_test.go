//go:build integration

package poll_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/testenv"
)

// diesBeforeStoring is the real Cassandra poll store, except that its first
// Create stores nothing and fails, as an API process that died after it
// claimed the Idempotency-Key and before it wrote the poll would. The claim
// itself went to Cassandra for real. It keeps the poll that attempt would
// have written.
type diesBeforeStoring struct {
	*cassandra.PollStore
	mu      sync.Mutex
	dropped *poll.Poll
}

func (d *diesBeforeStoring) Create(ctx context.Context, p *poll.Poll) error {
	d.mu.Lock()
	first := d.dropped == nil
	if first {
		cp := *p
		cp.Options = append([]poll.Option(nil), p.Options...)
		d.dropped = &cp
	}
	d.mu.Unlock()
	if first {
		return apperr.Unavailable("insert poll", errors.New("process died before the write"))
	}
	return d.PollStore.Create(ctx, p)
}

func (d *diesBeforeStoring) droppedPoll(t *testing.T) *poll.Poll {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dropped == nil {
		t.Fatal("the first attempt never reached Create")
	}
	return d.dropped
}

func createKeyEnv(t *testing.T) (*poll.Service, *diesBeforeStoring, *cassandra.PollStore) {
	s, ccfg := testenv.Cassandra(t)
	cstore := cassandra.NewPollStore(s, ccfg)
	store := &diesBeforeStoring{PollStore: cstore}
	svc := poll.NewService(poll.Config{CounterShards: 4, IndexBuckets: 4, CacheTTL: time.Minute},
		poll.Deps{Store: store, Log: testenv.Logger(t), Now: time.Now})
	return svc, store, cstore
}

func listed(t *testing.T, store *cassandra.PollStore, creator id.ID) []id.ID {
	t.Helper()
	ids, _, err := store.ListByCreator(context.Background(), creator, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// Issue 10: a create that claimed its Idempotency-Key and died before it
// stored the poll left the key answering 404 for a day. A retry now stores
// the poll under the claimed id: created (201), readable, listed once, and
// later retries replay it.
func TestCreateRetryAfterAttemptThatStoredNothing(t *testing.T) {
	svc, store, cstore := createKeyEnv(t)
	ctx := context.Background()
	creator := id.New()
	in := poll.CreateInput{Title: "lunch", Description: "where to",
		Options: []poll.OptionInput{{Text: "pizza"}, {Text: "soup"}, {Text: "salad"}}, Settings: poll.DefaultSettings}

	if _, _, err := svc.Create(ctx, creator, in, "create-1"); !errors.Is(err, apperr.ErrUnavailable) {
		t.Fatalf("first attempt: %v, want unavailable", err)
	}
	claimed := store.droppedPoll(t).ID
	if _, err := cstore.Get(ctx, claimed); !errors.Is(err, poll.ErrNotFound) {
		t.Fatalf("the first attempt stored its poll after all: %v", err)
	}

	p, created, err := svc.Create(ctx, creator, in, "create-1")
	if err != nil {
		t.Fatalf("retry with the same key: %v (want 201 with poll %s)", err, claimed)
	}
	if !created || p.ID != claimed {
		t.Fatalf("retry: created=%v id=%s, want created under the claimed id %s", created, p.ID, claimed)
	}
	got, err := cstore.Get(ctx, claimed)
	if err != nil {
		t.Fatalf("read the poll the retry stored: %v", err)
	}
	if got.Title != "lunch" || got.Description != "where to" || len(got.Options) != 3 ||
		!reflect.DeepEqual(got.Options, p.Options) || !got.CreatedAt.Equal(p.CreatedAt) {
		t.Fatalf("stored poll %+v, answered %+v", got, p)
	}
	if ids := listed(t, cstore, creator); len(ids) != 1 || ids[0] != claimed {
		t.Fatalf("creator's list: %v, want only %s", ids, claimed)
	}

	again, created, err := svc.Create(ctx, creator, in, "create-1")
	if err != nil || created || again.ID != claimed || !reflect.DeepEqual(again.Options, p.Options) {
		t.Fatalf("third attempt: %v created=%v %+v, want the same poll replayed", err, created, again)
	}
	other := in
	other.Title = "dinner"
	if _, _, err := svc.Create(ctx, creator, other, "create-1"); !errors.Is(err, poll.ErrIdempotencyConflict) {
		t.Fatalf("same key, another body: %v, want IDEMPOTENCY_CONFLICT", err)
	}
	if ids := listed(t, cstore, creator); len(ids) != 1 {
		t.Fatalf("creator's list after the replays: %v", ids)
	}
}

// The attempt that claimed the key may not be dead but late: it writes its
// poll after the retry rebuilt it and the owner changed it. It writes the
// same rows at the same timestamp as the retry did, so it changes nothing:
// the owner's edit, option replacement and close stand, and the poll is
// listed once.
func TestLateFirstAttemptDoesNotUndoOwnerChanges(t *testing.T) {
	svc, store, cstore := createKeyEnv(t)
	ctx := context.Background()
	creator := id.New()
	start := time.Now().Add(time.Hour) // a draft: options can change without a vote count
	in := poll.CreateInput{Title: "draft", StartTime: &start,
		Options: []poll.OptionInput{{Text: "a"}, {Text: "b"}}, Settings: poll.DefaultSettings}
	if _, _, err := svc.Create(ctx, creator, in, "late-1"); err == nil {
		t.Fatal("first attempt stored its poll")
	}
	p, created, err := svc.Create(ctx, creator, in, "late-1")
	if err != nil || !created {
		t.Fatalf("retry: %v created=%v", err, created)
	}
	late := store.droppedPoll(t)
	if !reflect.DeepEqual(late, p) {
		t.Fatalf("the retry rebuilt another poll than the first attempt meant to write:\n%+v\n%+v", late, p)
	}

	title := "renamed"
	if _, err := svc.Update(ctx, creator, p.ID, poll.Patch{Title: &title,
		Options: []poll.OptionInput{{Text: "x"}, {Text: "y"}, {Text: "z"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(ctx, creator, p.ID, poll.Patch{Close: true}); err != nil {
		t.Fatal(err)
	}
	if err := cstore.Create(ctx, late); err != nil { // the first attempt's write, arriving now
		t.Fatal(err)
	}
	got, err := cstore.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, o := range got.Options {
		texts = append(texts, o.Text)
	}
	if got.Title != "renamed" || got.ClosedAt.IsZero() || !reflect.DeepEqual(texts, []string{"x", "y", "z"}) {
		t.Fatalf("after the late create: title %q, closed %v, options %v; want renamed, closed, [x y z]",
			got.Title, got.ClosedAt, texts)
	}
	if ids := listed(t, cstore, creator); len(ids) != 1 || ids[0] != p.ID {
		t.Fatalf("creator's list: %v, want only %s", ids, p.ID)
	}
}
