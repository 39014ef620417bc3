//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/verify"
)

// runTally runs the built binary and returns stdout and the exit code.
func runTally(t *testing.T, bin string, env []string, args ...string) ([]byte, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.Bytes(), 0
	case errors.As(err, &exit):
		t.Logf("tally %s: exit %d\n%s", strings.Join(args, " "), exit.ExitCode(), stderr.String())
		return stdout.Bytes(), exit.ExitCode()
	default:
		t.Fatalf("tally %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		return nil, -1
	}
}

// TestToolsCLI runs `tally verify` and `tally dlq` as an operator would:
// exit codes, the JSON report, and one line per dead-lettered message.
func TestToolsCLI(t *testing.T) {
	cfg := testenv.Config(t)
	env := testenv.Environ(cfg)
	bin := testenv.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("verify", func(t *testing.T) {
		s, err := cassandra.Connect(cfg.Cassandra, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		now := time.Now().UTC().Truncate(time.Millisecond)
		p := &poll.Poll{ID: id.New(), CreatorID: id.New(), Title: "cli",
			StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now,
			Options:       []poll.Option{{ID: id.New(), Text: "a"}, {ID: id.New(), Text: "b"}},
			CounterShards: 4, IndexBuckets: 4}
		if err := cassandra.NewPollStore(s, cfg.Cassandra).Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		out, code := runTally(t, bin, env, "verify", "--json")
		var rep verify.Report
		if err := json.Unmarshal(out, &rep); err != nil || code != 0 || rep.RowsScanned != 0 || !rep.Consistent {
			t.Fatalf("empty keyspace: exit %d, %v: %s", code, err, out)
		}
		// A ballot whose follow-ups never ran: no index row, no counters,
		// written an hour ago (verify judges "in flight" by write time).
		if err := s.Session.Query(`INSERT INTO votes (poll_id, voter_id, option_ids, vote_id, request_id, voted_at)
			VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`, p.ID, id.New(), []id.ID{p.Options[1].ID}, id.New(),
			id.New(), now.Add(-time.Hour), now.Add(-time.Hour).UnixMicro()).WithContext(ctx).Exec(); err != nil {
			t.Fatal(err)
		}
		out, code = runTally(t, bin, env, "verify", "--json")
		rep = verify.Report{}
		if err := json.Unmarshal(out, &rep); err != nil || code != 1 || rep.IndexMissing != 1 || len(rep.CounterDrift) != 1 ||
			rep.CounterDrift[0].BallotDelta != 1 || rep.CounterDrift[0].OptionDeltas[p.Options[1].ID] != 1 {
			t.Fatalf("broken keyspace: exit %d, %v: %s", code, err, out)
		}
		// --repair writes the missing index row and counts its ballot (an
		// index row means "counted"), which is the whole repair here.
		if _, code = runTally(t, bin, env, "verify", "--repair"); code != 0 {
			t.Fatalf("--repair: exit %d", code)
		}
		out, code = runTally(t, bin, env, "verify", "--json")
		rep = verify.Report{}
		if err := json.Unmarshal(out, &rep); err != nil || code != 0 || !rep.Consistent || rep.RowsScanned != 1 {
			t.Fatalf("after repair: exit %d, %v: %s", code, err, out)
		}
	})

	t.Run("dlq", func(t *testing.T) {
		w := kafkax.NewWriter(cfg.Kafka, cfg.Kafka.DLQTopic)
		defer w.Close()
		if err := w.WriteMessages(ctx,
			kafka.Message{Key: []byte("a"), Value: []byte(`{"poll_id":"` + id.New().String() + `"}`),
				Headers: []kafka.Header{{Key: "error", Value: []byte("boom")}, {Key: "attempts", Value: []byte("2")}}},
			kafka.Message{Key: []byte("b"), Value: []byte("garbage")}); err != nil {
			t.Fatal(err)
		}
		out, code := runTally(t, bin, env, "dlq", "list")
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); code != 0 || len(lines) != 2 ||
			!strings.HasPrefix(lines[0], "0/0 key=a poll_id=") || !strings.Contains(lines[0], `error="boom"`) ||
			!strings.Contains(lines[1], "not a vote message") {
			t.Fatalf("dlq list: exit %d:\n%s", code, out)
		}
		out, code = runTally(t, bin, env, "dlq", "list", "--json")
		if n := strings.Count(string(out), "\n"); code != 0 || n != 2 || !strings.Contains(string(out), `"attempts":2`) {
			t.Fatalf("dlq list --json: exit %d:\n%s", code, out)
		}
		for run, want := range []int{2, 0} {
			out, code = runTally(t, bin, env, "dlq", "replay", "--group", cfg.Kafka.Group+"-dlq", "--json")
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			var sum struct{ Summary struct{ Replayed int } }
			if code != 0 || json.Unmarshal([]byte(lines[len(lines)-1]), &sum) != nil || sum.Summary.Replayed != want {
				t.Fatalf("dlq replay %d: exit %d:\n%s", run, code, out)
			}
		}
	})
}
