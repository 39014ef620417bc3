package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one fault's verdict.
type Row struct {
	Fault      string `json:"fault"`
	Offered    int    `json:"offered"`
	Accepted   int    `json:"accepted"`
	Counted    int    `json:"counted"`
	Lost       int    `json:"lost"`
	Duplicated int    `json:"duplicated"`
	LockedOut  int    `json:"locked_out"`
	// Violations are other invariants the fault checks: a close undone, a
	// vote on a closed poll or on an option the poll does not have, no vote
	// accepted after the fault, a row nobody sent.
	Violations int `json:"violations"`
	// Excused are accepted options-race votes that failed with a clear code
	// after the option change won.
	Excused int `json:"excused,omitempty"`
	// RefusedLate are accepted second votes that failed ALREADY_VOTED
	// while the voter's other accepted request holds the row.
	RefusedLate int `json:"refused_late"`
	// RecoveryS is from the end of the fault to the first vote accepted
	// after it; -1 when the fault has no end (baseline) or none was.
	RecoveryS float64 `json:"recovery_s"`
	Pass      bool    `json:"pass"`
	// NotRun: the fault could not be played (the API was not ready).
	NotRun    bool           `json:"not_run,omitempty"`
	DurationS float64        `json:"duration_s"`
	Notes     []string       `json:"notes,omitempty"`
	Detail    map[string]any `json:"detail,omitempty"`
}

func (r Row) verdict() string {
	if r.NotRun {
		return "NOT RUN"
	}
	if r.Pass {
		return "PASS"
	}
	return "FAIL"
}

func (r Row) summary() string {
	return fmt.Sprintf("%s — offered %d, accepted %d, counted %d, lost %d, duplicated %d, locked out %d, violations %d",
		r.verdict(), r.Offered, r.Accepted, r.Counted, r.Lost, r.Duplicated, r.LockedOut, r.Violations)
}

func recoveryText(s float64) string {
	if s < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", s)
}

// printTable writes the matrix, one row per fault, then each row's notes.
func printTable(out io.Writer, h *harness, rows []Row) {
	fmt.Fprintf(out, "\nchaos run %s: %.0f votes/s open loop, keyspace %s, %s\n\n", h.runID, h.opt.rate, h.keyspace,
		time.Since(h.start).Round(time.Second))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault\toffered\taccepted\tcounted\trefused_late\tlost\tduplicated\tlocked_out\tviolations\trecovery_s\tresult\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", r.Fault, r.Offered, r.Accepted, r.Counted,
			r.RefusedLate, r.Lost, r.Duplicated, r.LockedOut, r.Violations, recoveryText(r.RecoveryS), r.verdict())
	}
	tw.Flush()
	for _, r := range rows {
		if len(r.Notes) == 0 {
			continue
		}
		fmt.Fprintf(out, "\n%s (%s, %.0f s):\n", r.Fault, r.verdict(), r.DurationS)
		for _, n := range r.Notes {
			fmt.Fprintf(out, "  - %s\n", n)
		}
	}
	failed := []string{}
	for _, r := range rows {
		if !r.Pass {
			failed = append(failed, r.Fault)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(out, "\nFAILED: %s (process logs: %s)\n", strings.Join(failed, ", "), h.outDir)
	} else {
		fmt.Fprintf(out, "\nall %d rows PASS\n", len(rows))
	}
}

func writeJSON(path string, h *harness, rows []Row) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	doc := map[string]any{
		"run": h.runID, "keyspace": h.keyspace, "rate": h.opt.rate, "short": h.opt.short,
		"started": h.start.UTC(), "duration_s": round1(time.Since(h.start).Seconds()),
		"settings": map[string]any{
			"warm_s": h.opt.warm.Seconds(), "post_s": h.opt.post.Seconds(), "hold_s": h.opt.hold.Seconds(),
			"cassandra_pause_s": h.opt.pause.Seconds(), "worker_kills": h.opt.workerKills, "api_kills": h.opt.apiKills,
			"race_polls": h.opt.racePolls, "second_share": h.opt.secondShare, "retries": h.opt.retries, "env": h.opt.env,
		},
		"rows": rows, "logs": h.outDir,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// dumpLine is one request in a --dump file.
type dumpLine struct {
	Poll       string    `json:"poll_id"`
	Voter      string    `json:"voter_id"`
	Key        string    `json:"idempotency_key"`
	Second     bool      `json:"second_vote,omitempty"`
	Offered    time.Time `json:"offered"`
	Answers    []int     `json:"answers"`
	Code       string    `json:"code,omitempty"`
	RequestID  string    `json:"request_id,omitempty"`
	VoteID     string    `json:"vote_id,omitempty"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
	Verdict    string    `json:"verdict"`
	State      string    `json:"state,omitempty"`
	RowRequest string    `json:"row_request_id,omitempty"`
	RowKey     string    `json:"row_key,omitempty"`
}

// dump writes the phase's requests and what the check made of each.
func (h *harness) dump(ph *phase, rows map[pv]*voteRow, states map[*request]string) error {
	f, err := os.Create(filepath.Join(h.outDir, ph.name+".requests.jsonl"))
	if err != nil {
		return err
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, r := range ph.led.reqs {
		row := rows[pv{r.poll, r.voter.id}]
		d := dumpLine{Poll: r.poll.String(), Voter: r.voter.id.String(), Key: r.key, Second: r.second, Offered: r.offered,
			Answers: r.answers, Code: r.code, RequestID: r.requestID, VoteID: r.voteID, AcceptedAt: r.acceptedAt,
			State: states[r]}
		if row != nil {
			d.RowRequest, d.RowKey = row.RequestID.String(), row.IdempotencyKey
		}
		switch {
		case !r.accepted():
			d.Verdict = "not accepted"
		case matches(r, row):
			d.Verdict = "counted"
		case ph.excused[r]:
			d.Verdict = "excused"
		default:
			d.Verdict = "lost"
		}
		if err := enc.Encode(d); err != nil {
			return err
		}
	}
	return nil
}
