package tally

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/livelag"
	"github.com/tally-vote/tally/pkg/poll"
)

type row struct {
	options []id.ID
	flags   []string
}

func TestRowCountsAdd(t *testing.T) {
	a, b := id.New(), id.New()
	type want struct {
		all, unflagged Counts
		flagged        int64
		reasons        map[string]int64
	}
	tests := []struct {
		name string
		rows []row
		want want
	}{
		{"nothing", nil, want{NewCounts(), NewCounts(), 0, map[string]int64{}}},
		{"honest only",
			[]row{{[]id.ID{a}, nil}, {[]id.ID{b}, []string{}}, {[]id.ID{a}, nil}},
			want{Counts{3, map[id.ID]int64{a: 2, b: 1}}, Counts{3, map[id.ID]int64{a: 2, b: 1}}, 0, map[string]int64{}}},
		{"one flagged ballot leaves the unflagged tally",
			[]row{{[]id.ID{a}, nil}, {[]id.ID{b}, []string{"ip_burst"}}},
			want{Counts{2, map[id.ID]int64{a: 1, b: 1}}, Counts{1, map[id.ID]int64{a: 1}}, 1, map[string]int64{"ip_burst": 1}}},
		{"two reasons on one ballot count under both, the ballot once",
			[]row{{[]id.ID{a}, []string{"device_reuse", "ip_burst"}}, {[]id.ID{a}, []string{"ip_burst"}}},
			want{Counts{2, map[id.ID]int64{a: 2}}, NewCounts(), 2, map[string]int64{"ip_burst": 2, "device_reuse": 1}}},
		{"multi-option ballots keep their selections",
			[]row{{[]id.ID{a, b}, nil}, {[]id.ID{a, b}, []string{"anonymous_ip"}}, {[]id.ID{b}, nil}},
			want{Counts{3, map[id.ID]int64{a: 2, b: 3}}, Counts{2, map[id.ID]int64{a: 1, b: 2}}, 1, map[string]int64{"anonymous_ip": 1}}},
		{"empty and repeated flag names are ignored",
			[]row{{[]id.ID{a}, []string{""}}, {[]id.ID{b}, []string{"ip_burst", "ip_burst", ""}}},
			want{Counts{2, map[id.ID]int64{a: 1, b: 1}}, Counts{1, map[id.ID]int64{a: 1}}, 1, map[string]int64{"ip_burst": 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := NewRowCounts()
			for _, r := range tc.rows {
				rc.Add(r.options, r.flags)
			}
			if !rc.All.Diff(tc.want.all).IsZero() || rc.All.Ballots != tc.want.all.Ballots {
				t.Errorf("all = %+v, want %+v", rc.All, tc.want.all)
			}
			if !rc.Unflagged.Diff(tc.want.unflagged).IsZero() {
				t.Errorf("unflagged = %+v, want %+v", rc.Unflagged, tc.want.unflagged)
			}
			if rc.Flagged.Ballots != tc.want.flagged || !maps.Equal(rc.Flagged.ByReason, tc.want.reasons) {
				t.Errorf("flagged = %+v, want %d %v", rc.Flagged, tc.want.flagged, tc.want.reasons)
			}
			// Every ballot is either flagged or unflagged.
			if rc.Unflagged.Ballots+rc.Flagged.Ballots != rc.All.Ballots {
				t.Errorf("unflagged %d + flagged %d != all %d", rc.Unflagged.Ballots, rc.Flagged.Ballots, rc.All.Ballots)
			}
		})
	}
}

func TestBuildFlagReport(t *testing.T) {
	a, b := id.New(), id.New()
	now := time.Now()
	p := &poll.Poll{ID: id.New(), StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour),
		Options: []poll.Option{{ID: a, Text: "A"}, {ID: b, Text: "B", DisplayOrder: 1}}}
	rc := NewRowCounts()
	for range 3 {
		rc.Add([]id.ID{a}, nil)
	}
	rc.Add([]id.ID{b}, nil)
	for range 4 {
		rc.Add([]id.ID{b}, []string{"ip_burst"})
	}
	r := BuildFlagReport(p, rc, now, now)
	if r.TotalVotes != 8 || r.FlaggedVotes != 4 || r.ByReason["ip_burst"] != 4 || len(r.ByReason) != 1 || r.PollID != p.ID {
		t.Fatalf("report %+v", r)
	}
	if r.Results.Tally != Final || r.Results.TotalVotes != 8 || r.Results.Options[0].Votes != 3 || r.Results.Options[1].Votes != 5 ||
		r.Results.Options[1].Percentage != 62.5 {
		t.Fatalf("results %+v", r.Results)
	}
	ex := r.ResultsExcludingFlagged
	if ex.TotalVotes != 4 || ex.Options[0].Votes != 3 || ex.Options[1].Votes != 1 || ex.Options[0].Percentage != 75 {
		t.Fatalf("results excluding flagged %+v", ex)
	}
	// The report owns its reasons: changing it does not change the count.
	r.ByReason["ip_burst"] = 0
	if rc.Flagged.ByReason["ip_burst"] != 4 {
		t.Fatal("report shares its map with the count")
	}
}

// fakeStore serves fixed rows and counters and records what is written.
type fakeStore struct {
	mu      sync.Mutex
	rows    RowCounts
	shards  Counts
	scans   int
	frozen  *Counts
	ballots [][]id.ID
}

func (f *fakeStore) SumShards(context.Context, id.ID, int) (Counts, error) { return f.shards, nil }
func (f *fakeStore) Ballots(context.Context, id.ID, int) ([][]id.ID, [][]int, error) {
	return f.ballots, nil, nil
}
func (f *fakeStore) CountRows(context.Context, id.ID, count.Method, int, func(int, int, int64)) (RowCounts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scans++
	return f.rows, nil
}
func (f *fakeStore) AnyRow(context.Context, id.ID, int) (bool, error) { return true, nil }
func (f *fakeStore) AdjustShard(context.Context, id.ID, int, Counts) error {
	return errors.New("unexpected repair")
}
func (f *fakeStore) SaveFinal(_ context.Context, _ id.ID, fr Frozen) (Frozen, error) {
	f.frozen = &fr.Counts
	return fr, nil
}
func (f *fakeStore) RecordDrift(context.Context, id.ID, time.Time, Drift) error { return nil }
func (f *fakeStore) DriftRuns(context.Context, id.ID) ([]Drift, error)          { return nil, nil }
func (f *fakeStore) LoadLag(context.Context, id.ID) ([]livelag.Hist, error)     { return nil, nil }
func (f *fakeStore) LoadFinal(context.Context, id.ID) (Frozen, bool, error) {
	return Frozen{}, false, nil
}

type fakeAudit struct {
	mu     sync.Mutex
	events []audit.Event
}

func (a *fakeAudit) Record(_ context.Context, pollID, actor id.ID, kind string, detail map[string]any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, audit.Event{PollID: pollID, ActorID: actor, Kind: kind, Detail: detail})
}

func (a *fakeAudit) Append(ctx context.Context, pollID, actor id.ID, kind string, detail map[string]any) (audit.Entry, error) {
	a.Record(ctx, pollID, actor, kind, detail)
	return audit.Entry{}, nil
}

func (a *fakeAudit) Head(context.Context, id.ID) (audit.Head, error) { return audit.Head{}, nil }

// downCache and downFence fail every call, as Redis does when it is down.
type downCache struct{}

var errDown = errors.New("dial tcp 127.0.0.1:6380: connect: connection refused")

func (downCache) Get(context.Context, string) ([]byte, bool, error)        { return nil, false, errDown }
func (downCache) Set(context.Context, string, []byte, time.Duration) error { return errDown }
func (downCache) Del(context.Context, ...string) error                     { return errDown }

type downFence struct{}

func (downFence) Raise(context.Context, id.ID) (func(), error) { return nil, errDown }

// newOfflineService builds a service whose Redis is down: no cache, no
// fence.
func newOfflineService(t *testing.T, st Store, au Auditor) (*Service, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return NewService(Config{}, st, downCache{}, downFence{}, au, zap.NewNop(), time.Now, reg), reg
}

// flaggedPoll is a poll with 5 ballots, 2 of them flagged.
func flaggedPoll() (*poll.Poll, RowCounts) {
	a, b := id.New(), id.New()
	now := time.Now()
	p := &poll.Poll{ID: id.New(), CreatorID: id.New(), StartTime: now.Add(-time.Hour),
		EndTime: now.Add(time.Hour), Options: []poll.Option{{ID: a, Text: "A"}, {ID: b, Text: "B"}}, IndexBuckets: 4, CounterShards: 4}
	rc := NewRowCounts()
	rc.Add([]id.ID{a}, nil)
	rc.Add([]id.ID{a}, nil)
	rc.Add([]id.ID{b}, nil)
	rc.Add([]id.ID{b}, []string{"ip_burst"})
	rc.Add([]id.ID{b}, []string{"device_reuse", "ip_burst"})
	return p, rc
}

func TestFlagsOwnerOnlyAndAudited(t *testing.T) {
	p, rc := flaggedPoll()
	st := &fakeStore{rows: rc}
	au := &fakeAudit{}
	s, reg := newOfflineService(t, st, au)
	ctx := context.Background()

	if _, err := s.Flags(ctx, p, id.New()); !errors.Is(err, poll.ErrNotOwner) {
		t.Fatalf("another caller: %v, want NOT_POLL_OWNER", err)
	}
	if st.scans != 0 || len(au.events) != 0 {
		t.Fatalf("a refused read scanned %d times and audited %d entries", st.scans, len(au.events))
	}
	r, err := s.Flags(ctx, p, p.CreatorID)
	if err != nil {
		t.Fatal(err)
	}
	if r.TotalVotes != 5 || r.FlaggedVotes != 2 || r.ByReason["ip_burst"] != 2 || r.ByReason["device_reuse"] != 1 ||
		r.ResultsExcludingFlagged.TotalVotes != 3 || r.ResultsExcludingFlagged.Options[1].Votes != 1 || r.Results.Options[1].Votes != 3 {
		t.Fatalf("report %+v", r)
	}
	if len(au.events) != 1 {
		t.Fatalf("%d audit entries, want 1", len(au.events))
	}
	e := au.events[0]
	if e.Kind != audit.RetalliedExcludingFlagged || e.ActorID != p.CreatorID || e.PollID != p.ID || e.Detail["by"] != "api" ||
		e.Detail["flagged_ballots"] != int64(2) || e.Detail["ballots_excluding_flagged"] != int64(3) {
		t.Fatalf("audit entry %+v", e)
	}
	if got := testutil.ToFloat64(s.m.retallies.WithLabelValues("api")); got != 1 {
		t.Fatalf("tally_flag_retallies_total{by=api} = %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "tally_flag_retallies_total"); err != nil || n != 2 {
		t.Fatalf("retallies series: %d, %v", n, err)
	}
}

// Reconcile counts with and without flagged ballots in one pass, and the
// final tally it freezes is the tally of record: flagged ballots included.
func TestReconcileReportsFlaggedAndFreezesEverything(t *testing.T) {
	p, rc := flaggedPoll()
	st := &fakeStore{rows: rc, shards: rc.All}
	au := &fakeAudit{}
	s, _ := newOfflineService(t, st, au)
	rep, err := s.Reconcile(context.Background(), p, ReconcileOptions{Final: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.scans != 1 {
		t.Fatalf("%d scans, want 1", st.scans)
	}
	if rep.Rows.Ballots != 5 || rep.Unflagged.Ballots != 3 || rep.Flagged.Ballots != 2 || rep.Flagged.ByReason["ip_burst"] != 2 {
		t.Fatalf("report %+v", rep)
	}
	if st.frozen == nil || st.frozen.Ballots != 5 || !st.frozen.Diff(rc.All).IsZero() {
		t.Fatalf("froze %+v, want every ballot %+v", st.frozen, rc.All)
	}
	if got := rep.RowCounts(); got.All.Ballots != 5 || got.Unflagged.Ballots != 3 || got.Flagged.Ballots != 2 {
		t.Fatalf("RowCounts %+v", got)
	}
	for _, e := range au.events {
		if e.Kind == audit.RetalliedExcludingFlagged {
			t.Fatal("a plain reconciliation audited a re-tally")
		}
	}
}

// slowStore counts rows slowly, as a viral poll's index scan does.
type slowStore struct {
	fakeStore
	scan     time.Duration
	repaired bool
}

func (f *slowStore) CountRows(ctx context.Context, p id.ID, m count.Method, b int, pr func(int, int, int64)) (RowCounts, error) {
	time.Sleep(f.scan)
	return f.fakeStore.CountRows(ctx, p, m, b, pr)
}

func (f *slowStore) AdjustShard(context.Context, id.ID, int, Counts) error {
	f.repaired = true
	return nil
}

// timedFence records when it was raised and lifted.
type timedFence struct {
	raised, lifted time.Time
	lifts          int
}

func (f *timedFence) Raise(context.Context, id.ID) (func(), error) {
	f.raised = time.Now()
	return func() { f.lifted = time.Now(); f.lifts++ }, nil
}

// A live reconciliation holds its fence at most FenceMax: follow-up writers
// of the poll (and the drain batch waiting on them) are held no longer
// however long the count takes, and a count that outlasted the fence
// reports its drift without repairing it. A count within the bound repairs.
func TestReconcileFenceIsBounded(t *testing.T) {
	cases := []struct {
		name       string
		scan       time.Duration
		final      bool
		wantRepair bool
		maxHold    time.Duration
	}{
		{"a quick count repairs under the fence", 0, false, true, 150 * time.Millisecond},
		{"a long count lifts the fence at FenceMax and repairs nothing", 400 * time.Millisecond, false, false, 250 * time.Millisecond},
		{"a final run keeps its fence (no writers are left)", 400 * time.Millisecond, true, true, time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, rc := flaggedPoll()
			st := &slowStore{fakeStore: fakeStore{rows: rc, shards: NewCounts()}, scan: c.scan}
			f := &timedFence{}
			reg := prometheus.NewRegistry()
			s := NewService(Config{FenceMax: 100 * time.Millisecond}, st, downCache{}, f, nil, zap.NewNop(), time.Now, reg)
			if _, err := s.Reconcile(context.Background(), p, ReconcileOptions{Final: c.final}); err != nil {
				t.Fatal(err)
			}
			if f.lifts != 1 {
				t.Fatalf("fence lifted %d times, want 1", f.lifts)
			}
			if hold := f.lifted.Sub(f.raised); hold > c.maxHold {
				t.Fatalf("fence held %s, want at most %s", hold, c.maxHold)
			}
			if st.repaired != c.wantRepair {
				t.Fatalf("repaired %v, want %v", st.repaired, c.wantRepair)
			}
			released := testutil.ToFloat64(s.m.runs.WithLabelValues("fence_released"))
			if (released == 1) != (c.scan > 0 && !c.final) {
				t.Fatalf("fence_released = %v", released)
			}
		})
	}
}
