package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/id"
)

func newAuditCmd() *cobra.Command {
	var (
		pollID string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "audit --poll ID",
		Short: "Print a poll's audit log (owner actions, repairs, frozen tally, dead-lettered votes), newest first, as JSON lines",
		Long: "Prints the poll's whole story newest first: its owner actions from the hash chain (with their seq) " +
			"merged with its system events. `tally audit verify` checks the owner-action chain.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := pollFlag(pollID, true)
			if err != nil {
				return err
			}
			return withApp(cmd.Context(), func(ctx context.Context, a *app.App) error {
				events, err := a.AuditLog(ctx, id, limit)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(os.Stdout)
				for _, e := range events {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&pollID, "poll", "", "poll id (required)")
	cmd.Flags().IntVar(&limit, "limit", 1000, "most entries to print")
	_ = cmd.MarkFlagRequired("poll")
	cmd.AddCommand(newAuditVerifyCmd())
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var pollID, head string
	cmd := &cobra.Command{
		Use:   "verify --poll ID [--head SEQ:HASH]",
		Short: "Check a poll's owner-action audit chain; exits 1 when it is broken",
		Long: "Reads the poll's whole audit chain and checks it: seqs without gaps from 1, each entry's prev_hash " +
			"the previous entry's hash, each hash recomputed from the entry. An edited or deleted entry fails. " +
			"Deleting the last entries leaves a valid shorter chain, so it is checked against an anchor: the head " +
			"stored with the poll's certified final tally when the poll is frozen, or a head given as --head " +
			"(one the owner read from GET /v1/polls/{id}/audit, say), which takes precedence.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			pid, err := pollFlag(pollID, true)
			if err != nil {
				return err
			}
			anchor, err := headFlag(head)
			if err != nil {
				return err
			}
			return withApp(cmd.Context(), func(ctx context.Context, a *app.App) error {
				return runAuditVerify(ctx, a, os.Stdout, pid, anchor)
			})
		},
	}
	cmd.Flags().StringVar(&pollID, "poll", "", "poll id (required)")
	cmd.Flags().StringVar(&head, "head", "", "the anchored head, SEQ:HASH (hash in hex); default: the certified final tally's")
	_ = cmd.MarkFlagRequired("poll")
	return cmd
}

// headFlag reads --head; empty is no anchor.
func headFlag(s string) (*audit.Head, error) {
	if s == "" {
		return nil, nil
	}
	h, err := audit.ParseHead(s)
	if err != nil {
		return nil, fmt.Errorf("--head: %w", err)
	}
	return &h, nil
}

// auditVerifyReport is what tally audit verify prints, one JSON object.
type auditVerifyReport struct {
	PollID  string `json:"poll_id"`
	Entries int    `json:"entries"`
	Head    string `json:"head,omitempty"`
	Anchor  string `json:"anchor,omitempty"`
	// AnchorFrom says where the anchor came from: the --head flag, or the
	// poll's certified final tally.
	AnchorFrom string `json:"anchor_from,omitempty"`
	Valid      bool   `json:"valid"`
	Error      string `json:"error,omitempty"`
}

// runAuditVerify prints the report; a broken chain is an error (exit 1).
func runAuditVerify(ctx context.Context, a *app.App, w io.Writer, pollID id.ID, anchor *audit.Head) error {
	from := "--head"
	if anchor == nil {
		// Without a head given, a certified tally's anchor is used: the
		// chain's head when the tally was frozen.
		stored, err := a.Tally.AuditAnchor(ctx, pollID)
		if err != nil {
			return err
		}
		anchor, from = stored, "certified final tally"
	}
	head, n, err := a.VerifyAuditChain(ctx, pollID, anchor)
	if err != nil && !errors.Is(err, audit.ErrChainBroken) {
		return err
	}
	rep := auditVerifyReport{PollID: pollID.String(), Entries: n, Valid: err == nil}
	if head.Seq > 0 {
		rep.Head = head.String()
	}
	if anchor != nil {
		rep.Anchor, rep.AnchorFrom = anchor.String(), from
	}
	if err != nil {
		rep.Error = err.Error()
	}
	if eerr := json.NewEncoder(w).Encode(rep); eerr != nil {
		return eerr
	}
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	return nil
}
