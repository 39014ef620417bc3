package verify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/tally-vote/tally/pkg/export"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/tally"
)

// ErrExportFile: the export file cannot be read as a poll's ballots.
var ErrExportFile = errors.New("export file")

// LedgerDeps are what a ledger check reads: the poll's counting method,
// its frozen tally with the signed ledger head, and the keys that verify
// the head's signature.
type LedgerDeps struct {
	Layout LayoutFunc
	Finals Finals
	Keys   []receipt.Key
}

// LedgerReport is the outcome of `tally verify --poll ID --ledger FILE`.
type LedgerReport struct {
	PollID  id.ID `json:"poll_id"`
	Records int64 `json:"records"`
	// Uncommitted counts records without a commitment (recorded before
	// receipts), whose leaves carry 32 zero bytes.
	Uncommitted int64  `json:"uncommitted"`
	Root        string `json:"root"`
	Size        uint64 `json:"size"`
	FrozenRoot  string `json:"frozen_root"`
	FrozenSize  uint64 `json:"frozen_size"`
	KeyID       string `json:"kid"`
	// SignatureValid: the frozen head's signature verifies with the key
	// its kid names.
	SignatureValid bool `json:"signature_valid"`
	RootMatches    bool `json:"root_matches"`
	TallyMatches   bool `json:"tally_matches"`
	// Problems says, one line each, what does not match.
	Problems []string `json:"problems"`
	Match    bool     `json:"match"`
}

// exportBallot is what a ledger check reads of one exported ballot.
type exportBallot struct {
	pollID     string
	voteID     string
	options    []string
	scores     []int
	commitment string
}

// Ledger recomputes a frozen poll's ledger root and tally from one of its
// exports (CSV or JSON Lines, as the owner export or `tally export`
// writes them) and compares them with the frozen, signed ones. Only the
// file is trusted for the ballots; the store gives the method and the
// frozen values. A malformed file is an error; a file that reads but does
// not match is a report with Match false.
func Ledger(ctx context.Context, d LedgerDeps, pollID id.ID, r io.Reader) (LedgerReport, error) {
	rep := LedgerReport{PollID: pollID, Problems: []string{}}
	layout, err := d.Layout(ctx, pollID)
	if err != nil {
		return rep, fmt.Errorf("read poll %s: %w", pollID, err)
	}
	entries, counts := []ledger.Entry{}, tally.NewCounts()
	seen := map[id.ID]bool{}
	err = readExport(r, func(line int, b exportBallot) error {
		if b.pollID != pollID.String() {
			return fmt.Errorf("%w: line %d: poll_id %q is not %s", ErrExportFile, line, b.pollID, pollID)
		}
		e, opts, err := b.parse()
		if err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrExportFile, line, err)
		}
		if seen[e.VoteID] {
			return fmt.Errorf("%w: line %d: vote_id %s appears twice", ErrExportFile, line, id.ID(e.VoteID))
		}
		seen[e.VoteID] = true
		if b.commitment == "" {
			rep.Uncommitted++
		}
		entries = append(entries, e)
		counts.AddBallot(layout.Method, opts, b.scores)
		rep.Records++
		return nil
	})
	if err != nil {
		return rep, err
	}
	l := ledger.Build(entries)
	root := l.Root()
	rep.Root, rep.Size = b64(root[:]), l.Size()

	f, frozen, err := d.Finals.LoadFinal(ctx, pollID)
	if err != nil {
		return rep, fmt.Errorf("load final tally: %w", err)
	}
	switch {
	case !frozen:
		rep.Problems = append(rep.Problems, "the poll's final tally is not frozen")
		return rep, nil
	case f.Ledger == nil:
		rep.Problems = append(rep.Problems, "the final tally was frozen without a ledger")
	default:
		h := f.Ledger
		rep.FrozenRoot, rep.FrozenSize, rep.KeyID = b64(h.Root[:]), h.Size, h.KeyID
		rep.RootMatches = h.Root == root && h.Size == l.Size()
		if !rep.RootMatches {
			rep.Problems = append(rep.Problems, fmt.Sprintf("ledger root %s over %d ballots, frozen %s over %d",
				rep.Root, rep.Size, rep.FrozenRoot, rep.FrozenSize))
		}
		rep.SignatureValid = verifyHead(h.TreeHead(pollID, f.AsOf), d.Keys) == nil
		if !rep.SignatureValid {
			rep.Problems = append(rep.Problems, fmt.Sprintf("the frozen tree head's signature does not verify with key %q", h.KeyID))
		}
	}
	tp := countProblems(f.Counts, counts)
	rep.TallyMatches = len(tp) == 0
	rep.Problems = append(rep.Problems, tp...)
	rep.Match = len(rep.Problems) == 0
	return rep, nil
}

// verifyHead checks the head's signature with the key its kid names.
func verifyHead(h receipt.TreeHead, keys []receipt.Key) error {
	for _, k := range keys {
		if k.ID == h.KeyID {
			return h.VerifyWith(k.Public)
		}
	}
	return fmt.Errorf("%w: %q", receipt.ErrUnknownKey, h.KeyID)
}

// countProblems lists where the file's tally and the frozen one differ.
func countProblems(frozen, file tally.Counts) []string {
	var out []string
	if frozen.Ballots != file.Ballots {
		out = append(out, fmt.Sprintf("tally ballots: file %d, frozen %d", file.Ballots, frozen.Ballots))
	}
	d := frozen.Diff(file)
	keys := make([]id.ID, 0, len(d.Options))
	for k := range d.Options {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, k := range keys {
		out = append(out, fmt.Sprintf("tally option %s: file %d, frozen %d", k, file.Options[k], frozen.Options[k]))
	}
	return out
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// parse turns the exported fields into a ledger entry and the options.
func (b exportBallot) parse() (ledger.Entry, []id.ID, error) {
	var e ledger.Entry
	v, err := id.Parse(b.voteID)
	if err != nil {
		return e, nil, fmt.Errorf("vote_id %q: %w", b.voteID, err)
	}
	e.VoteID = v
	if b.commitment != "" {
		c, err := base64.RawURLEncoding.DecodeString(b.commitment)
		if err != nil || len(c) != ledger.HashSize {
			return e, nil, fmt.Errorf("commitment %q is not 32 bytes of base64url", b.commitment)
		}
		copy(e.Commitment[:], c)
	}
	opts := make([]id.ID, len(b.options))
	for i, s := range b.options {
		if opts[i], err = id.Parse(s); err != nil {
			return e, nil, fmt.Errorf("option id %q: %w", s, err)
		}
	}
	return e, opts, nil
}

// readExport calls fn for each ballot of a CSV or JSON Lines export,
// told apart by the first byte ('{' starts JSON Lines).
func readExport(r io.Reader, fn func(line int, b exportBallot) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	first, err := br.Peek(1)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	if first[0] == '{' {
		return readJSONL(br, fn)
	}
	return readCSV(br, fn)
}

func readJSONL(r *bufio.Reader, fn func(int, exportBallot) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var rec export.Record
		if err := dec.Decode(&rec); err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrExportFile, line, err)
		}
		if err := fn(line, exportBallot{pollID: rec.PollID, voteID: rec.VoteID, options: rec.OptionIDs,
			scores: rec.Scores, commitment: rec.Commitment}); err != nil {
			return err
		}
	}
	return sc.Err()
}

func readCSV(r io.Reader, fn func(int, exportBallot) error) error {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("%w: header: %w", ErrExportFile, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, need := range []string{"poll_id", "vote_id", "option_ids", "scores", "commitment"} {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("%w: no %s column (an export from before ledgers?)", ErrExportFile, need)
		}
	}
	for line := 2; ; line++ {
		f, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrExportFile, line, err)
		}
		b := exportBallot{pollID: f[col["poll_id"]], voteID: f[col["vote_id"]], commitment: f[col["commitment"]]}
		if s := f[col["option_ids"]]; s != "" {
			b.options = strings.Split(s, ";")
		}
		if s := f[col["scores"]]; s != "" {
			for _, p := range strings.Split(s, ";") {
				n, err := strconv.Atoi(p)
				if err != nil {
					return fmt.Errorf("%w: line %d: score %q", ErrExportFile, line, p)
				}
				b.scores = append(b.scores, n)
			}
		}
		if err := fn(line, b); err != nil {
			return err
		}
	}
}
