//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestDLQReplayAfterFreeze: a dead-lettered vote accepted while its poll
// was open, re-driven by `tally dlq replay` after the poll's final tally
// froze, is refused by the worker (POLL_NOT_ACTIVE, dead-lettered again)
// and no vote row is written: the frozen tally stays equal to the rows.
func TestDLQReplayAfterFreeze(t *testing.T) {
	r := newCLIRig(t)
	cfg, env, bin, ctx, s := r.cfg, r.env, r.bin, r.ctx, r.s

	f := newFrozenPoll(t, ctx, bin, env, s, cfg.Cassandra)
	voter, request := id.New(), id.New()
	// The message as the API produced it while the poll was open.
	value, err := json.Marshal(map[string]any{"request_id": request, "vote_id": id.New(), "poll_id": f.p.ID,
		"voter_id": voter, "option_ids": []id.ID{f.p.Options[0].ID}, "accepted_at": f.p.EndTime.Add(-30 * time.Minute),
		"poll_seen_at": f.p.EndTime.Add(-30 * time.Minute), "poll_version": f.p.Version, "options_version": f.p.OptionsVersion})
	if err != nil {
		t.Fatal(err)
	}
	w := kafkax.NewWriter(cfg.Kafka, cfg.Kafka.DLQTopic)
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(f.p.ID.String() + ":" + voter.String()), Value: value,
		Headers: []kafka.Header{{Key: "error", Value: []byte("read poll: timeout")}, {Key: "attempts", Value: []byte("3")}}}); err != nil {
		t.Fatal(err)
	}

	startWorker(t, cfg)
	out, code := runTally(t, bin, env, "dlq", "replay", "--group", cfg.Kafka.Group+"-dlq", "--json")
	if code != 0 || !strings.Contains(string(out), `"replayed":1`) {
		t.Fatalf("dlq replay: exit %d:\n%s", code, out)
	}

	// The worker either writes the row (the old behaviour) or refuses the
	// vote and records why; wait for one of them.
	var rows int
	var failure string
	testenv.Eventually(t, 60*time.Second, func() error {
		if err := s.Session.Query(`SELECT COUNT(*) FROM votes WHERE poll_id = ? AND voter_id = ?`, f.p.ID, voter).
			WithContext(ctx).Scan(&rows); err != nil {
			return err
		}
		iter := s.Session.Query(`SELECT error_code FROM vote_request_failures WHERE poll_id = ? AND voter_id = ? AND request_id = ?`,
			f.p.ID, voter, request).WithContext(ctx).Iter()
		iter.Scan(&failure)
		if err := iter.Close(); err != nil {
			return err
		}
		if rows == 0 && failure == "" {
			return fmt.Errorf("replayed vote neither written nor refused yet")
		}
		return nil
	})
	if rows != 0 || failure != "POLL_NOT_ACTIVE" {
		t.Fatalf("replay after the freeze: %d vote rows, failure %q; want no row and POLL_NOT_ACTIVE", rows, failure)
	}
	out, code = runTally(t, bin, env, "dlq", "list", "--json")
	if code != 0 || strings.Count(string(out), "\n") != 2 || !strings.Contains(string(out), "frozen") {
		t.Fatalf("dlq list after the refused replay: exit %d, want the vote dead-lettered again as frozen:\n%s", code, out)
	}
	if rep, code := runVerifyJSON(t, bin, env, "--poll", f.p.ID.String()); code != 0 || !rep.Consistent {
		t.Fatalf("verify after the refused replay: exit %d, %+v", code, rep)
	}
}
