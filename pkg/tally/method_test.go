package tally

import (
	"context"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// tennesseePoll is the Tennessee capital example (see pkg/count) as a
// ranked poll: 42 M>N>C>K, 26 N>C>K>M, 15 C>K>N>M, 17 K>C>N>M; the
// published instant-runoff winner is Knoxville.
func tennesseePoll(method count.Method) (*poll.Poll, [][]id.ID, map[string]id.ID) {
	p := &poll.Poll{ID: id.New(), Settings: poll.Settings{Method: method, AllowMultipleOptions: true},
		StartTime: time.Now().Add(-time.Hour), EndTime: time.Now().Add(time.Hour)}
	ids := map[string]id.ID{}
	for _, c := range "MNCK" {
		o := poll.Option{ID: id.New(), Text: string(c)}
		ids[string(c)] = o.ID
		p.Options = append(p.Options, o)
	}
	var ballots [][]id.ID
	for _, g := range []struct {
		n     int
		order string
	}{{42, "MNCK"}, {26, "NCKM"}, {15, "CKNM"}, {17, "KCNM"}} {
		for range g.n {
			var b []id.ID
			for _, c := range g.order {
				b = append(b, ids[string(c)])
			}
			ballots = append(ballots, b)
		}
	}
	return p, ballots, ids
}

func TestFinalResultsCarryTheMethodCount(t *testing.T) {
	for _, tc := range []struct {
		method count.Method
		winner string
	}{{count.Ranked, "K"}, {count.Schulze, "N"}} {
		t.Run(string(tc.method), func(t *testing.T) {
			p, ballots, ids := tennesseePoll(tc.method)
			rows := NewRowCounts()
			for _, b := range ballots {
				rows.Add(b, nil)
			}
			s, _ := newOfflineService(t, &fakeStore{rows: rows, ballots: ballots}, nil)
			r, err := s.Results(context.Background(), p, Final)
			if err != nil {
				t.Fatal(err)
			}
			if r.Method != tc.method || r.Count == nil || r.Count.Winner != ids[tc.winner].String() || r.Count.Ballots != 100 {
				t.Fatalf("got method %s count %+v", r.Method, r.Count)
			}
			live, err := s.Results(context.Background(), p, Live)
			if err != nil {
				t.Fatal(err)
			}
			if live.Count != nil {
				t.Fatal("live results carry an exact count")
			}
		})
	}
}

func TestApprovalResultsCarryNoCount(t *testing.T) {
	p, ballots, _ := tennesseePoll(count.Approval)
	rows := NewRowCounts()
	for _, b := range ballots {
		rows.Add(b[:2], nil)
	}
	s, _ := newOfflineService(t, &fakeStore{rows: rows}, nil)
	r, err := s.Results(context.Background(), p, Final)
	if err != nil || r.Count != nil || r.Method != count.Approval || r.TotalVotes != 100 {
		t.Fatalf("got %+v, %v", r, err)
	}
}

func TestMethodCountIsReproducible(t *testing.T) {
	p, ballots, _ := tennesseePoll(count.Ranked)
	a, b := MethodCount(p, ballots), MethodCount(p, ballots)
	if a.InstantRunoff == nil || len(a.InstantRunoff.Rounds) != 3 || a.Winner != b.Winner {
		t.Fatalf("got %+v", a)
	}
}

// A final reconciliation of a ranked poll reports the exact count with the
// frozen totals and records the winner with the freeze in the audit log.
func TestFinalReconcileReportsTheCount(t *testing.T) {
	p, ballots, ids := tennesseePoll(count.Ranked)
	p.ClosedAt = time.Now().Add(-time.Minute)
	rows := NewRowCounts()
	for _, b := range ballots {
		rows.Add(b, nil)
	}
	au := &fakeAudit{}
	s, _ := newOfflineService(t, &fakeStore{rows: rows, shards: rows.All, ballots: ballots}, au)
	rep, err := s.Reconcile(context.Background(), p, ReconcileOptions{Final: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count == nil || rep.Count.Winner != ids["K"].String() || len(rep.Count.InstantRunoff.Rounds) != 3 {
		t.Fatalf("report count %+v", rep.Count)
	}
	var frozen map[string]any
	for _, e := range au.events {
		if e.Kind == audit.TallyFrozen {
			frozen = e.Detail
		}
	}
	if frozen == nil || frozen["winner"] != ids["K"].String() || frozen["method"] != count.Ranked {
		t.Fatalf("audit events %+v", au.events)
	}
	// Not final: no count.
	rep, err = s.Reconcile(context.Background(), p, ReconcileOptions{})
	if err != nil || rep.Count != nil {
		t.Fatalf("non-final run: %+v, %v", rep.Count, err)
	}
}

// shardRecorder is a Store that keeps what AdjustShard adds.
type shardRecorder struct {
	fakeStore
	added Counts
}

func (r *shardRecorder) AdjustShard(_ context.Context, _ id.ID, _ int, d Counts) error {
	r.added = d
	return nil
}

// TestLiveCountersCountFirstPreferences: the counters of a ranked or
// Schulze poll get each ballot's first preference only (the published
// first-round counts of the Tennessee example: 42, 26, 15, 17), while an
// approval poll's get every option a ballot lists.
func TestLiveCountersCountFirstPreferences(t *testing.T) {
	for _, tc := range []struct {
		method count.Method
		want   map[string]int64
	}{
		{count.Ranked, map[string]int64{"M": 42, "N": 26, "C": 15, "K": 17}},
		{count.Schulze, map[string]int64{"M": 42, "N": 26, "C": 15, "K": 17}},
		{count.Approval, map[string]int64{"M": 100, "N": 100, "C": 100, "K": 100}},
	} {
		p, ballots, ids := tennesseePoll(tc.method)
		st := &shardRecorder{}
		s, _ := newOfflineService(t, st, nil)
		if err := s.Add(context.Background(), p, 0, ballots, nil); err != nil {
			t.Fatal(err)
		}
		if st.added.Ballots != 100 {
			t.Fatalf("%s: %d ballots counted, want 100", tc.method, st.added.Ballots)
		}
		for name, n := range tc.want {
			if got := st.added.Options[ids[name]]; got != n {
				t.Errorf("%s: %s counted %d, want %d", tc.method, name, got, n)
			}
		}
	}
}

// TestScoreCountersCarryRunningMeans: on a score poll each ballot adds one
// to every option it scores and its score to the option's ScoreSumKey, so
// the results document shows each option's number of scores and mean; the
// method's count from the same ballots agrees.
func TestScoreCountersCarryRunningMeans(t *testing.T) {
	p := &poll.Poll{ID: id.New(), Settings: poll.Settings{Method: count.Score, AllowMultipleOptions: true},
		StartTime: time.Now().Add(-time.Hour), EndTime: time.Now().Add(time.Hour),
		Options: []poll.Option{{ID: id.New(), Text: "a"}, {ID: id.New(), Text: "b"}, {ID: id.New(), Text: "c"}}}
	a, b, c := p.Options[0].ID, p.Options[1].ID, p.Options[2].ID
	ballots := [][]id.ID{{a, b}, {b}, {a, b}}
	scores := [][]int{{5, 0}, {4}, {2, 3}}
	st := &shardRecorder{}
	s, _ := newOfflineService(t, st, nil)
	if err := s.Add(context.Background(), p, 0, ballots, scores); err != nil {
		t.Fatal(err)
	}
	d := st.added
	if d.Ballots != 3 || d.Options[a] != 2 || d.Options[ScoreSumKey(a)] != 7 || d.Options[b] != 3 ||
		d.Options[ScoreSumKey(b)] != 7 || d.Options[c] != 0 {
		t.Fatalf("counters %+v", d)
	}
	if ScoreSumKey(a) == a || ScoreSumKey(a) == ScoreSumKey(b) || ScoreSumKey(a) != ScoreSumKey(a) {
		t.Fatal("ScoreSumKey is not a distinct, stable key per option")
	}
	r := BuildResults(p, d, Live, time.Now(), time.Now())
	if r.Options[0].Votes != 2 || r.Options[0].Mean == nil || *r.Options[0].Mean != 3.5 ||
		r.Options[1].Votes != 3 || *r.Options[1].Mean != 2.33 || r.Options[2].Mean != nil {
		t.Fatalf("results %+v", r.Options)
	}
	res := MethodCountScored(p, ballots, scores)
	if res.Score == nil || res.Score.Options[0].Mean != 3.5 || res.Score.Options[1].Count != 3 || res.Winner != a.String() {
		t.Fatalf("count %+v", res.Score)
	}
}
