package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/verify"
)

func newVerifyCmd() *cobra.Command {
	var (
		pollID         string
		o              verify.Options
		asJSON         bool
		repairCounters bool
		auditHead      string
		ledgerFile     string
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every vote row's per-poll index row and each poll's counters against the rows; --repair fixes them",
		Long: "Scans the whole votes table by token ranges. Each row's index row in votes_by_poll must exist with the " +
			"row's vote_id and options; each poll's counter shards must sum to its rows per option and ballots. " +
			"--poll checks one poll, still by a full scan, since the index cannot list rows missing from it. " +
			"Each frozen final tally (final_tallies) must equal its poll's rows per option and ballots. " +
			"--repair writes missing or wrong index rows, and adds counter drift to shard 0 of the polls named " +
			"with --poll, or of every poll with --repair-counters. Nothing is written to a poll whose final tally is " +
			"frozen: its problems are reported as frozen, and a final tally is never repaired. " +
			"With --poll, the poll's owner-action audit chain is checked too (against --audit-head when given, else against the head anchored in its certified final tally): " +
			"an edited or deleted entry, and with the anchored head a deleted last entry, is an inconsistency. " +
			"Exits 1 while inconsistencies remain, a final tally differing from the rows among them. " +
			"With --poll ID --ledger FILE it checks only an export of the poll (CSV or JSON Lines, from the owner export " +
			"or tally export) against the poll's certified tally: it recomputes the Merkle root and the tally from the " +
			"file alone, verifies the frozen tree head's signature with the receipt keys, and exits 1 unless all match.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			pid, err := pollFlag(pollID, false)
			if err != nil {
				return err
			}
			o.Poll = pid
			o.RepairCounters = repairCounters
			anchor, err := headFlag(auditHead)
			if err != nil {
				return err
			}
			if anchor != nil && pid == (id.ID{}) {
				return errors.New("--audit-head needs --poll")
			}
			if ledgerFile != "" {
				if pid == (id.ID{}) {
					return errors.New("--ledger needs --poll")
				}
				return withApp(cmd.Context(), func(ctx context.Context, a *app.App) error {
					return runLedgerVerify(ctx, a, os.Stdout, pid, ledgerFile, asJSON)
				})
			}
			return withApp(cmd.Context(), func(ctx context.Context, a *app.App) error {
				verr := runVerify(ctx, a, o, asJSON)
				if pid == (id.ID{}) {
					return verr
				}
				// The scan's --json report stays the one document on
				// standard output.
				out := os.Stdout
				if asJSON {
					out = os.Stderr
				}
				aerr := runAuditVerify(ctx, a, out, pid, anchor)
				return errors.Join(verr, aerr)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&pollID, "poll", "", "check only this poll (its counters may then be repaired without --repair-counters)")
	f.BoolVar(&o.Repair, "repair", false, "write missing or wrong index rows and repair counters where allowed (never of a frozen poll)")
	f.BoolVar(&repairCounters, "repair-counters", false, "with --repair, repair the counters of every poll, not only --poll")
	f.DurationVar(&o.Grace, "grace", 2*time.Minute, "rows younger than this with a missing index row count as in flight, not as inconsistent")
	f.IntVar(&o.Splits, "splits", 0, "token ranges to cut the ring into (0: 64, at least the ring's own)")
	f.IntVar(&o.Workers, "workers", 0, "token ranges read at once (0: 16)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringVar(&ledgerFile, "ledger", "", "with --poll, check this export of the poll against its signed ledger root and certified tally (nothing else is checked)")
	f.StringVar(&auditHead, "audit-head", "", "with --poll, the anchored head of the poll's audit chain, SEQ:HASH (default: the certified final tally's)")
	return cmd
}

func runVerify(ctx context.Context, a *app.App, o verify.Options, asJSON bool) error {
	log := a.Logger().Named("verify")
	if o.Repair && (o.RepairCounters || o.Poll != (id.ID{})) {
		log.Warn("counters of polls still receiving votes may show in-flight drift (a vote whose counter " +
			"increment has not landed yet, or one counted after its range was scanned); repairing them then " +
			"makes them wrong, so repair counters of closed or quiet polls")
	}
	o.Progress = progressBar("scanning votes")
	log.Info("verify started", zap.Stringer("poll_id", o.Poll), zap.Bool("repair", o.Repair),
		zap.Bool("repair_counters", o.RepairCounters))
	rep, err := a.Verify(ctx, o)
	if err != nil {
		return err
	}
	log.Info("verify finished", zap.Int64("rows_scanned", rep.RowsScanned), zap.Int("polls", rep.Polls),
		zap.Int64("index_missing", rep.IndexMissing), zap.Int64("index_mismatched", rep.IndexMismatched),
		zap.Int64("index_repaired", rep.IndexRepaired), zap.Int64("index_frozen", rep.IndexFrozen), zap.Int("counter_drift", len(rep.CounterDrift)),
		zap.Int("counters_repaired", rep.CountersRepaired), zap.Int("finals_checked", rep.FinalsChecked),
		zap.Int("final_mismatches", len(rep.FinalMismatches)), zap.Int64("duration_ms", rep.DurationMS))
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printVerify(os.Stdout, rep)
	}
	if n := rep.Remaining(); n > 0 {
		if len(rep.CounterDrift) > rep.CountersRepaired && !o.Repair {
			log.Warn("counter drift of polls still receiving votes may be in flight; rerun before repairing")
		}
		return fmt.Errorf("verify: %d inconsistencies remain", n)
	}
	return nil
}

// runLedgerVerify checks an export file against the poll's frozen ledger
// and tally, printing the report; a mismatch is an error (exit 1).
func runLedgerVerify(ctx context.Context, a *app.App, w io.Writer, pollID id.ID, path string, asJSON bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := a.VerifyLedger(ctx, pollID, f)
	if err != nil {
		return err
	}
	a.Logger().Named("verify").Info("ledger checked", zap.Stringer("poll_id", pollID), zap.Int64("records", rep.Records),
		zap.Bool("match", rep.Match), zap.Bool("root_matches", rep.RootMatches), zap.Bool("tally_matches", rep.TallyMatches),
		zap.Bool("signature_valid", rep.SignatureValid))
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printLedgerVerify(w, rep)
	}
	if !rep.Match {
		return fmt.Errorf("verify --ledger: the export does not match poll %s's certified ledger and tally", pollID)
	}
	return nil
}

func printLedgerVerify(w io.Writer, rep verify.LedgerReport) {
	fmt.Fprintf(w, "export of poll %s: %d ballots (%d without a commitment)\n", rep.PollID, rep.Records, rep.Uncommitted)
	fmt.Fprintf(w, "ledger root from the file %s over %d leaves; frozen %s over %d\n", rep.Root, rep.Size, rep.FrozenRoot, rep.FrozenSize)
	fmt.Fprintf(w, "tree head signature (kid %s): valid=%v; root matches=%v; tally matches=%v\n",
		rep.KeyID, rep.SignatureValid, rep.RootMatches, rep.TallyMatches)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "MISMATCH: %s\n", p)
	}
	if rep.Match {
		fmt.Fprintln(w, "match: the export gives the signed ledger root and the certified tally")
	}
}

func printVerify(w io.Writer, rep verify.Report) {
	fmt.Fprintf(w, "rows scanned %d, checked %d, polls %d, in %d ms\n",
		rep.RowsScanned, rep.RowsChecked, rep.Polls, rep.DurationMS)
	fmt.Fprintf(w, "index rows: %d missing, %d mismatched, %d repaired, %d in flight (not judged), %d of frozen polls (never repaired)\n",
		rep.IndexMissing, rep.IndexMismatched, rep.IndexRepaired, rep.IndexInFlight, rep.IndexFrozen)
	for _, p := range rep.IndexProblems {
		fmt.Fprintf(w, "  index %s poll %s voter %s repaired=%v frozen=%v\n", p.Problem, p.PollID, p.VoterID, p.Repaired, p.Frozen)
	}
	for _, id := range rep.UnknownPolls {
		fmt.Fprintf(w, "votes of unknown poll %s\n", id)
	}
	for _, d := range rep.CounterDrift {
		fmt.Fprintf(w, "counter drift poll %s: ballots %+d", d.PollID, d.BallotDelta)
		for opt, n := range d.OptionDeltas {
			fmt.Fprintf(w, ", option %s %+d", opt, n)
		}
		fmt.Fprintf(w, " (rows minus counters) repaired=%v frozen=%v\n", d.Repaired, d.Frozen)
	}
	fmt.Fprintf(w, "final tallies: %d checked, %d counts differ from the rows\n", rep.FinalsChecked, len(rep.FinalMismatches))
	for _, m := range rep.FinalMismatches {
		what := "option " + m.OptionID.String()
		if m.OptionID == tally.BallotKey {
			what = "ballots"
		}
		fmt.Fprintf(w, "  final tally poll %s %s: final %d, rows %d\n", m.PollID, what, m.Final, m.Rows)
	}
	if rep.Consistent {
		fmt.Fprintln(w, "consistent")
	}
}

// progressBar is a progress callback drawing a bar on standard error, or
// nil when standard error is not a terminal (piped, in a job, in CI).
func progressBar(desc string) func(done, total int) {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	var bar *progressbar.ProgressBar
	return func(done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionSetDescription(desc), progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true), progressbar.OptionOnCompletion(func() { fmt.Fprintln(os.Stderr) }))
		}
		_ = bar.Set(done)
	}
}
