//go:build integration

package export_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scylladb/gocqlx/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/export"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

var (
	key1 = []byte("integration-key-one-0123456789")
	key2 = []byte("integration-key-two-0123456789")
)

// fixture is a keyspace with two polls' votes written by the real vote
// store (row, then index row), and what a direct read of votes returns.
type fixture struct {
	s     gocqlx.Session
	polls *cassandra.PollStore
	a, b  *poll.Poll
	rows  []vote.Ballot // a direct single-stream read of votes
}

func newFixture(t *testing.T, ctx context.Context) *fixture {
	s, cfg := testenv.Cassandra(t)
	f := &fixture{s: s, polls: cassandra.NewPollStore(s, cfg)}
	votes := cassandra.NewVoteStore(s, cfg, prometheus.NewRegistry())
	now := time.Now().UTC().Truncate(time.Millisecond)
	mk := func(buckets, n int) *poll.Poll {
		p := &poll.Poll{ID: id.New(), CreatorID: id.New(), Title: "export",
			StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now,
			Options:       []poll.Option{{ID: id.New(), Text: "a"}, {ID: id.New(), Text: "b"}},
			CounterShards: 4, IndexBuckets: buckets}
		if err := f.polls.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(32)
		for i := 0; i < n; i++ {
			g.Go(func() error {
				b := &vote.Ballot{PollID: p.ID, VoterID: id.New(), VoteID: id.New(),
					RequestID: id.New(), OptionIDs: []id.ID{p.Options[i%2].ID},
					VotedAt: now.Add(time.Duration(i) * time.Millisecond), Anonymous: i%5 == 0}
				if i%3 == 0 {
					b.IP, b.UserAgent = fmt.Sprintf("10.0.%d.%d", i/256, i%256), fmt.Sprintf(`agent "%d", with comma`, i)
				}
				if i%7 == 0 {
					b.OptionIDs = []id.ID{p.Options[0].ID, p.Options[1].ID}
				}
				if _, _, err := votes.Insert(gctx, b); err != nil {
					return err
				}
				return votes.Index(gctx, p.ID, vote.Bucket(b.VoterID, p.IndexBuckets), []*vote.Ballot{b})
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatalf("write votes: %v", err)
		}
		return p
	}
	f.a, f.b = mk(4, 600), mk(2, 300)
	// The direct read the exports are compared with: one paged stream.
	iter := s.Session.Query(`SELECT poll_id, voter_id, vote_id, option_ids, voted_at, anonymous, ip, user_agent FROM votes`).
		WithContext(ctx).PageSize(500).Iter()
	var (
		r      vote.Ballot
		ip, ua *string
	)
	for iter.Scan(&r.PollID, &r.VoterID, &r.VoteID, &r.OptionIDs, &r.VotedAt, &r.Anonymous, &ip, &ua) {
		if ip != nil {
			r.IP = *ip
		}
		if ua != nil {
			r.UserAgent = *ua
		}
		f.rows = append(f.rows, r)
		r, ip, ua = vote.Ballot{}, nil, nil
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if len(f.rows) != 900 {
		t.Fatalf("direct read found %d rows, wrote 900", len(f.rows))
	}
	return f
}

func (f *fixture) deps(stdout io.Writer) export.Deps {
	buckets := func(ctx context.Context, id id.ID) (int, error) {
		p, err := f.polls.Get(ctx, id)
		if err != nil {
			return 0, err
		}
		return p.IndexBuckets, nil
	}
	return export.Deps{Source: cassandra.NewVoteSource(f.s, buckets), Stdout: stdout, Log: testenvLogger(),
		Metrics: export.NewMetrics(nil), Now: time.Now}
}

// expected is what an export with o must hold, keyed by poll and voter
// column, from the direct read.
func (f *fixture) expected(o export.Options) map[string]export.Record {
	want := map[string]export.Record{}
	for _, r := range f.rows {
		if o.Poll != (id.ID{}) && r.PollID != o.Poll {
			continue
		}
		voter := r.VoterID.String()
		if !o.RealVoterIDs {
			voter = export.Pseudonym(o.PseudonymKey, r.VoterID)
		}
		rec := export.Record{PollID: r.PollID.String(), Voter: voter, VoteID: r.VoteID.String(),
			VotedAt: r.VotedAt.UTC(), Anonymous: r.Anonymous}
		for _, id := range r.OptionIDs {
			rec.OptionIDs = append(rec.OptionIDs, id.String())
		}
		if o.IncludeIP {
			rec.IP = &r.IP
		}
		if o.IncludeUserAgent {
			rec.UserAgent = &r.UserAgent
		}
		want[rec.PollID+"/"+rec.Voter] = rec
	}
	return want
}

// sameRows fails unless got holds each wanted record exactly once.
func sameRows(t *testing.T, got []export.Record, want map[string]export.Record) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range got {
		k := r.PollID + "/" + r.Voter
		seen[k]++
		w, ok := want[k]
		if !ok {
			t.Fatalf("exported a row the table does not hold: %+v", r)
		}
		if w.VoteID != r.VoteID || !w.VotedAt.Equal(r.VotedAt) || w.Anonymous != r.Anonymous ||
			strings.Join(w.OptionIDs, ",") != strings.Join(r.OptionIDs, ",") ||
			(w.IP == nil) != (r.IP == nil) || (w.IP != nil && *w.IP != *r.IP) ||
			(w.UserAgent == nil) != (r.UserAgent == nil) || (w.UserAgent != nil && *w.UserAgent != *r.UserAgent) {
			t.Fatalf("row %s exported as %+v, table holds %+v", k, r, w)
		}
	}
	for k := range want {
		if seen[k] != 1 {
			t.Fatalf("row %s exported %d times", k, seen[k])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("exported %d rows, table holds %d", len(got), len(want))
	}
}

// parse reads an export back in its format.
func parse(t *testing.T, format export.Format, data []byte, path string) ([]export.Record, []string) {
	t.Helper()
	switch format {
	case export.Parquet:
		if path == "" {
			path = filepath.Join(t.TempDir(), "stdout.parquet")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		recs, cols, err := export.ReadParquet(path)
		if err != nil {
			t.Fatalf("read parquet: %v", err)
		}
		return recs, cols
	case export.JSONL:
		var out []export.Record
		dec := json.NewDecoder(bytes.NewReader(data))
		var cols []string
		for {
			var m map[string]json.RawMessage
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			var r export.Record
			raw, _ := json.Marshal(m)
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			cols = cols[:0]
			for k := range m {
				cols = append(cols, k)
			}
			out = append(out, r)
		}
		return out, cols
	}
	lines, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("read csv: %v", err)
	}
	cols := lines[0]
	var out []export.Record
	for _, l := range lines[1:] {
		r := export.Record{PollID: l[0], Voter: l[1], VoteID: l[2], OptionIDs: strings.Split(l[3], ";")}
		if r.VotedAt, err = time.Parse(time.RFC3339Nano, l[4]); err != nil {
			t.Fatal(err)
		}
		r.Anonymous, _ = strconv.ParseBool(l[5])
		for i, c := range cols[6:] {
			v := l[6+i]
			switch c {
			case "ip":
				r.IP = &v
			case "user_agent":
				r.UserAgent = &v
			}
		}
		out = append(out, r)
	}
	return out, cols
}

func readOut(t *testing.T, o export.Options) ([]export.Record, []string) {
	t.Helper()
	data, err := os.ReadFile(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, o.Format, data, o.Out)
}

// TestExportYieldsTheTable exports one poll and the whole table in each
// format, to a file and to standard output, and compares with a direct read.
func TestExportYieldsTheTable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := newFixture(t, ctx)
	dir := t.TempDir()
	for _, format := range []export.Format{export.CSV, export.JSONL, export.Parquet} {
		for _, src := range []struct {
			name string
			poll id.ID
		}{{"table", id.ID{}}, {"poll", f.a.ID}} {
			t.Run(string(format)+"/"+src.name+"/file", func(t *testing.T) {
				o := export.Options{Poll: src.poll, Format: format, Out: filepath.Join(dir, src.name+"."+string(format)),
					PseudonymKey: key1, Splits: 24, Workers: 4}
				rep, err := export.Run(ctx, f.deps(nil), o)
				if err != nil {
					t.Fatal(err)
				}
				got, cols := readOut(t, o)
				sameRows(t, got, f.expected(o))
				if rep.Rows != int64(len(got)) || rep.Orphans != 0 {
					t.Fatalf("report %+v for %d rows", rep, len(got))
				}
				for _, c := range cols {
					if c == "ip" || c == "user_agent" {
						t.Fatalf("column %s exported without its flag: %v", c, cols)
					}
				}
				for _, p := range []string{o.CheckpointPath(), o.Out + ".partial"} {
					if ok, _ := fileExists(p); ok {
						t.Fatalf("%s left after a finished export", p)
					}
				}
			})
			t.Run(string(format)+"/"+src.name+"/stdout", func(t *testing.T) {
				var buf bytes.Buffer
				o := export.Options{Poll: src.poll, Format: format, PseudonymKey: key1, IncludeIP: true, IncludeUserAgent: true}
				if _, err := export.Run(ctx, f.deps(&buf), o); err != nil {
					t.Fatal(err)
				}
				got, cols := parse(t, format, buf.Bytes(), "")
				sameRows(t, got, f.expected(o))
				if strings.Join(cols, ",") != "" && !containsAll(cols, "ip", "user_agent") {
					t.Fatalf("columns %v lack ip and user_agent asked for", cols)
				}
			})
		}
	}
}

func containsAll(cols []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, c := range cols {
			found = found || c == w
		}
		if !found {
			return false
		}
	}
	return true
}

func fileExists(p string) (bool, error) {
	_, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// TestExportPseudonyms: stable per key, different across keys, real ids
// only when asked for, and no run at all without either.
func TestExportPseudonyms(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := newFixture(t, ctx)
	voters := func(o export.Options) map[string]bool {
		var buf bytes.Buffer
		o.Poll, o.Format = f.b.ID, export.JSONL
		if _, err := export.Run(ctx, f.deps(&buf), o); err != nil {
			t.Fatal(err)
		}
		got, _ := parse(t, export.JSONL, buf.Bytes(), "")
		out := map[string]bool{}
		for _, r := range got {
			out[r.Voter] = true
		}
		if len(out) != 300 {
			t.Fatalf("%d distinct voters, want 300", len(out))
		}
		return out
	}
	first, again, other := voters(export.Options{PseudonymKey: key1}), voters(export.Options{PseudonymKey: key1}),
		voters(export.Options{PseudonymKey: key2})
	real := voters(export.Options{RealVoterIDs: true})
	for v := range first {
		if !again[v] {
			t.Fatalf("pseudonym %s not stable across runs with one key", v)
		}
		if other[v] || real[v] {
			t.Fatalf("pseudonym %s shared by another key or a real id", v)
		}
	}
	for v := range real {
		if _, err := id.Parse(v); err != nil {
			t.Fatalf("real voter id %q is not a uuid", v)
		}
	}
	for _, o := range []export.Options{{Format: export.CSV}, {Format: export.CSV, PseudonymKey: []byte("short")}} {
		var buf bytes.Buffer
		if _, err := export.Run(ctx, f.deps(&buf), o); err == nil || buf.Len() != 0 {
			t.Fatalf("export without a usable key ran (err %v, %d bytes)", err, buf.Len())
		}
	}
}

// TestExportResumes interrupts file exports after a few units, damages the
// partial output as a kill in the middle of an append would, and resumes:
// the result holds every row exactly once.
func TestExportResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := newFixture(t, ctx)
	dir := t.TempDir()
	for _, tc := range []struct {
		format export.Format
		poll   id.ID
	}{{export.CSV, id.ID{}}, {export.Parquet, id.ID{}}, {export.JSONL, f.a.ID}} {
		t.Run(string(tc.format), func(t *testing.T) {
			o := export.Options{Poll: tc.poll, Format: tc.format, Out: filepath.Join(dir, "resume."+string(tc.format)),
				PseudonymKey: key1, Splits: 32, Workers: 2}
			runCtx, stop := context.WithCancel(ctx)
			var units int
			o.Progress = func(done, total int) {
				units = total
				if done == 2 {
					stop()
				}
			}
			rep, err := export.Run(runCtx, f.deps(nil), o)
			stop()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted run: %v", err)
			}
			if rep.Rows == 0 || rep.Rows >= int64(len(f.expected(o))) || units < 4 {
				t.Fatalf("interrupted run wrote %d rows in %d units; the test needs a partial export", rep.Rows, units)
			}
			if ok, _ := fileExists(o.Out); ok {
				t.Fatal("an interrupted export left a file at --out")
			}
			// A unit appended but not checkpointed when the process died.
			part, err := os.OpenFile(o.Out+".partial", os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = part.WriteString(strings.Repeat(`{"poll_id":"torn`, 50))
			_ = part.Close()

			o.Progress = nil
			if _, err := export.Run(ctx, f.deps(nil), o); !errors.Is(err, export.ErrCheckpointLeft) {
				t.Fatalf("a fresh run over a left checkpoint: %v", err)
			}
			o.Resume = true
			if _, err := export.Run(ctx, f.deps(nil), export.Options{Poll: o.Poll, Format: o.Format, Out: o.Out,
				PseudonymKey: key2, Resume: true}); !errors.Is(err, export.ErrCheckpoint) {
				t.Fatalf("resumed with another key: %v", err)
			}
			rep2, err := export.Run(ctx, f.deps(nil), o)
			if err != nil {
				t.Fatal(err)
			}
			if rep2.Resumed < 2 || rep2.Units != units {
				t.Fatalf("resumed run %+v: want at least 2 of %d units taken from the checkpoint", rep2, units)
			}
			got, _ := readOut(t, o)
			sameRows(t, got, f.expected(o))
			if rep2.Rows != int64(len(got)) {
				t.Fatalf("resumed report counts %d rows, file holds %d", rep2.Rows, len(got))
			}
		})
	}
}

func testenvLogger() *zap.Logger { return zap.NewNop() }
