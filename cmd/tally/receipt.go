package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
)

// receiptKeysPath is the well-known route of the receipt keys (httpapi.ReceiptKeysPath;
// not imported so the command stays a client of the API only).
const receiptKeysPath = "/.well-known/tally-receipt-keys"

func newReceiptCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "receipt", Short: "Check ballot receipts"}
	var api, keysFile, proofFile string
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Verify a receipt file: its signature, that its salt opens the commitment, and its inclusion proof",
		Long: "Verifies a receipt file downloaded from the voting page (tally-receipt-<poll>-<vote_id>.json): " +
			"the receipt's Ed25519 signature against the receipt keys, that the salt opens the commitment to the " +
			"choice (printing the option ids, and their labels when --api can read the poll), and, once the poll's " +
			"ledger is frozen, that the inclusion proof leads to the signed tree head's root and that the head's " +
			"signature verifies. Keys and proof come from --api (the well-known key route and " +
			"GET /v1/polls/{id}/receipts/{vote_id}) or, fully offline, from --keys and --proof files. " +
			"Needs no configuration and no store. Exits 1 when any check fails.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReceiptCheck(cmd.Context(), cmd.OutOrStdout(), args[0], api, keysFile, proofFile)
		},
	}
	check.Flags().StringVar(&api, "api", "", "base URL of the Tally API that issued the receipt, e.g. https://tally.example")
	check.Flags().StringVar(&keysFile, "keys", "", "a saved copy of the API's "+receiptKeysPath+" (JWK set), to verify offline")
	check.Flags().StringVar(&proofFile, "proof", "", "a saved answer of GET /v1/polls/{id}/receipts/{vote_id}, to verify offline")
	cmd.AddCommand(check)
	return cmd
}

func runReceiptCheck(ctx context.Context, w io.Writer, path, api, keysFile, proofFile string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("receipt check: %w", err)
	}
	file, err := ledger.ParseReceiptFile(raw)
	if err != nil {
		return fmt.Errorf("receipt check: %s: %w", path, err)
	}
	r := file.Receipt
	in := ledger.CheckInput{File: file}
	api = strings.TrimRight(api, "/")
	hc := &http.Client{Timeout: 20 * time.Second}
	var labels map[id.ID]string
	var proofMissing string

	switch {
	case keysFile != "":
		var ks ledger.KeySet
		if err := readJSONFile(keysFile, &ks); err != nil {
			return fmt.Errorf("receipt check: --keys: %w", err)
		}
		in.Keys = &ks
	case api != "":
		var ks ledger.KeySet
		if _, err := getJSON(ctx, hc, api+receiptKeysPath, &ks); err != nil {
			return fmt.Errorf("receipt check: reading the keys: %w", err)
		}
		in.Keys = &ks
	}
	switch {
	case proofFile != "":
		var p ledger.ProofAnswer
		if err := readJSONFile(proofFile, &p); err != nil {
			return fmt.Errorf("receipt check: --proof: %w", err)
		}
		in.Proof = &p
	case api != "":
		var p ledger.ProofAnswer
		status, err := getJSON(ctx, hc, api+"/v1/polls/"+r.PollID.String()+"/receipts/"+r.VoteID.String(), &p)
		switch {
		case status == http.StatusNotFound:
			proofMissing = "the server has no current ballot of this poll with this vote id (404)"
		case err != nil:
			return fmt.Errorf("receipt check: reading the proof: %w", err)
		default:
			in.Proof = &p
		}
	}
	if api != "" {
		// Labels are a courtesy: a poll the reader may not read still verifies.
		var pr struct {
			Options []struct {
				OptionID id.ID  `json:"option_id"`
				Text     string `json:"text"`
			} `json:"options"`
		}
		if _, err := getJSON(ctx, hc, api+"/v1/polls/"+r.PollID.String(), &pr); err == nil {
			labels = map[id.ID]string{}
			for _, o := range pr.Options {
				labels[o.OptionID] = o.Text
				in.Options = append(in.Options, o.OptionID)
			}
		}
	}

	rep := ledger.CheckReceipt(in)
	if proofMissing != "" {
		for i := range rep.Steps {
			if rep.Steps[i].Name == ledger.StepInclusion {
				rep.Steps[i] = ledger.Step{Name: ledger.StepInclusion, Outcome: ledger.Failed, Detail: proofMissing}
			}
		}
	}
	printReceiptReport(w, file, rep, labels)
	if !rep.OK() {
		return errors.New("receipt check: the receipt did not verify")
	}
	return nil
}

func printReceiptReport(w io.Writer, f ledger.ReceiptFile, rep ledger.Report, labels map[id.ID]string) {
	r := f.Receipt
	fmt.Fprintf(w, "receipt: vote %s of poll %s, recorded %s, ballot version %d, key %s\n",
		r.VoteID, r.PollID, r.RecordedAt.UTC().Format("2006-01-02T15:04:05.000Z"), r.BallotVersion, r.KeyID)
	for _, s := range rep.Steps {
		fmt.Fprintf(w, "%-8s %s: %s\n", s.Outcome, s.Name, s.Detail)
		if s.Name == ledger.StepOpening && rep.Choice != nil {
			for i, o := range rep.Choice.OptionIDs {
				line := "         choice: " + o.String()
				if l, ok := labels[o]; ok {
					line += " “" + l + "”"
				}
				if len(rep.Choice.Scores) > i {
					line += fmt.Sprintf(" score %d", rep.Choice.Scores[i])
				}
				fmt.Fprintln(w, line)
			}
		}
	}
	switch {
	case !rep.OK():
		fmt.Fprintln(w, "NOT VERIFIED: see the FAILED lines above")
	case rep.Included:
		fmt.Fprintln(w, "verified: the receipt is the server's, the salt opens it, and the ballot is in the poll's signed ledger")
	default:
		fmt.Fprintln(w, "no check failed; the lines above say what could not be checked yet")
	}
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: not the expected JSON: %w", path, err)
	}
	return nil
}

// getJSON GETs url and decodes a 200 answer into v. Any other status is
// an error naming it (and the API's error code when it sent one).
func getJSON(ctx context.Context, hc *http.Client, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return res.StatusCode, fmt.Errorf("GET %s: %s %s", url, res.Status, e.Error.Code)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return res.StatusCode, fmt.Errorf("GET %s: not the expected JSON: %w", url, err)
	}
	return res.StatusCode, nil
}
