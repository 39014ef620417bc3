// Command export measures `tally export` against a bare single-stream scan
// of votes, in the same run on the same rows: it writes the rows with the
// real vote store into a throw-away keyspace, reads them back both ways and
// checks every read saw every row.
//
//	go run ./bench/export --rows 120000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/scylladb/gocqlx/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/export"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/vote"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/export:", err)
		os.Exit(1)
	}
}

type config struct {
	hosts, keyspace string
	rows, polls     int
	writers         int
	workers         string
	keep            bool
}

func run() error {
	var c config
	flag.StringVar(&c.hosts, "hosts", "127.0.0.1:9042", "Cassandra contact point")
	flag.StringVar(&c.keyspace, "keyspace", "", "use this keyspace as it is (default: a fresh one, seeded and dropped)")
	flag.IntVar(&c.rows, "rows", 120000, "vote rows to write; the first poll gets most of them")
	flag.IntVar(&c.polls, "polls", 5, "polls the rows are spread over (the first takes rows - 1,000 per other poll)")
	flag.IntVar(&c.writers, "writers", 64, "concurrent vote writes while seeding")
	flag.StringVar(&c.workers, "workers", "1,8", "export worker counts to measure, comma-separated")
	flag.BoolVar(&c.keep, "keep", false, "keep the seeded keyspace")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	cfg := cassandra.Config{Hosts: []string{c.hosts}, Keyspace: c.keyspace,
		Replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}", Consistency: "LOCAL_QUORUM",
		SerialConsistency: "LOCAL_SERIAL", Timeout: 30 * time.Second, ConnectTimeout: 10 * time.Second, NumConns: 2,
		ReconnectInterval: time.Second}
	seed := cfg.Keyspace == ""
	if seed {
		cfg.Keyspace = fmt.Sprintf("tally_bench_export_%d", time.Now().UnixNano()%1e9)
		if err := cassandra.Migrate(ctx, cfg, zap.NewNop()); err != nil {
			return err
		}
		if !c.keep {
			defer func() {
				dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer dcancel()
				_ = cassandra.DropKeyspace(dctx, cfg)
			}()
		}
	}
	s, err := cassandra.Connect(cfg, zap.NewNop())
	if err != nil {
		return err
	}
	defer s.Close()
	polls := cassandra.NewPollStore(s, cfg)
	var first id.ID
	if seed {
		began := time.Now()
		if first, err = seedVotes(ctx, s, cfg, polls, c); err != nil {
			return err
		}
		fmt.Printf("seeded %d rows over %d polls with the vote store in %.1f s (keyspace %s)\n",
			c.rows, c.polls, time.Since(began).Seconds(), cfg.Keyspace)
	}

	// The bare scan runs before and after the exports: the first read
	// after seeding pays for flushes and compactions the later ones do not,
	// so the ratio is taken against the faster of the two.
	bareOnce := func(when string) (int64, float64, error) {
		total, dur, err := bareScan(ctx, s)
		if err != nil {
			return 0, 0, err
		}
		rate := float64(total) / dur.Seconds()
		fmt.Printf("%-44s %8d rows %7.2f s %9.0f rows/s\n", "bare scan, one stream ("+when+")", total, dur.Seconds(), rate)
		return total, rate, nil
	}
	total, bare, err := bareOnce("SELECT ... FROM votes")
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "tally-bench-export-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	deps := export.Deps{Source: cassandra.NewVoteSource(s, func(ctx context.Context, id id.ID) (int, error) {
		p, err := polls.Get(ctx, id)
		if err != nil {
			return 0, err
		}
		return p.IndexBuckets, nil
	}), Stdout: io.Discard, Log: zap.NewNop(), Metrics: export.NewMetrics(prometheus.NewRegistry()), Now: time.Now}
	key := []byte("bench-pseudonym-key-0123456789")
	type job struct {
		name string
		o    export.Options
		want int64
	}
	var jobs []job
	for _, w := range strings.Split(c.workers, ",") {
		var n int
		if _, err := fmt.Sscan(w, &n); err != nil {
			return fmt.Errorf("--workers %q: %w", w, err)
		}
		for _, f := range []export.Format{export.CSV, export.JSONL, export.Parquet} {
			jobs = append(jobs, job{fmt.Sprintf("export table, %s, %d workers", f, n),
				export.Options{Format: f, Workers: n, PseudonymKey: key}, total})
		}
	}
	if first != (id.ID{}) {
		p, err := polls.Get(ctx, first)
		if err != nil {
			return err
		}
		n := int64(c.rows - 1000*(c.polls-1))
		for _, f := range []export.Format{export.CSV, export.Parquet} {
			jobs = append(jobs, job{fmt.Sprintf("export poll (%d buckets), %s, 8 workers", p.IndexBuckets, f),
				export.Options{Poll: first, Format: f, Workers: 8, PseudonymKey: key}, n})
		}
	}
	for i, j := range jobs {
		j.o.Out = filepath.Join(dir, fmt.Sprintf("%d.%s", i, j.o.Format))
		began := time.Now()
		rep, err := export.Run(ctx, deps, j.o)
		if err != nil {
			return fmt.Errorf("%s: %w", j.name, err)
		}
		d := time.Since(began)
		st, err := os.Stat(j.o.Out)
		if err != nil {
			return err
		}
		if rep.Rows != j.want {
			return fmt.Errorf("%s: exported %d rows, want %d", j.name, rep.Rows, j.want)
		}
		_ = os.Remove(j.o.Out)
		rate := float64(rep.Rows) / d.Seconds()
		fmt.Printf("%-44s %8d rows %7.2f s %9.0f rows/s  (%.0f%% of bare; %d units, %.1f MiB)\n", j.name, rep.Rows,
			d.Seconds(), rate, 100*rate/bare, rep.Units, float64(st.Size())/(1<<20))
	}
	_, again, err := bareOnce("again, after the exports")
	if err != nil {
		return err
	}
	fmt.Printf("bare scan best %.0f rows/s\n", max(bare, again))
	return nil
}

// seedVotes writes the rows as the vote path does (row with IF NOT EXISTS,
// then its index row) and returns the first, biggest poll.
func seedVotes(ctx context.Context, s gocqlx.Session, cfg cassandra.Config, polls *cassandra.PollStore, c config) (id.ID, error) {
	votes := cassandra.NewVoteStore(s, cfg, prometheus.NewRegistry())
	now := time.Now().UTC().Truncate(time.Millisecond)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.writers)
	var first id.ID
	for i := 0; i < c.polls; i++ {
		p := &poll.Poll{ID: id.New(), CreatorID: id.New(), Title: "bench export",
			StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now,
			Options: []poll.Option{{ID: id.New(), Text: "a"}, {ID: id.New(), Text: "b"},
				{ID: id.New(), Text: "c"}},
			CounterShards: 16, IndexBuckets: 16}
		if err := polls.Create(ctx, p); err != nil {
			return first, err
		}
		n := 1000
		if i == 0 {
			first, n = p.ID, c.rows-1000*(c.polls-1)
		}
		for j := 0; j < n; j++ {
			g.Go(func() error {
				b := &vote.Ballot{PollID: p.ID, VoterID: id.New(), VoteID: id.New(),
					RequestID: id.New(), OptionIDs: []id.ID{p.Options[j%3].ID}, VotedAt: now,
					IP: "127.0.0.1", UserAgent: "bench/export"}
				if _, _, err := votes.Insert(gctx, b); err != nil {
					return err
				}
				return votes.Index(gctx, p.ID, vote.Bucket(b.VoterID, p.IndexBuckets), []*vote.Ballot{b})
			})
		}
	}
	return first, g.Wait()
}

// bareScan is the ceiling: one paged SELECT over votes, rows decoded and
// dropped.
func bareScan(ctx context.Context, s gocqlx.Session) (int64, time.Duration, error) {
	began := time.Now()
	iter := s.Session.Query(`SELECT poll_id, voter_id, option_ids, vote_id, voted_at, anonymous FROM votes`).
		WithContext(ctx).Consistency(gocql.LocalQuorum).PageSize(1000).Iter()
	var (
		n                     int64
		pollID, voter, voteID id.ID
		options               []id.ID
		at                    time.Time
		anon                  bool
	)
	for iter.Scan(&pollID, &voter, &options, &voteID, &at, &anon) {
		n++
	}
	return n, time.Since(began), iter.Close()
}
