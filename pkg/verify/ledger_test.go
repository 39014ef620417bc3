package verify

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/export"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/tally"
)

type oneFinal struct{ f tally.Frozen }

func (o oneFinal) LoadFinal(context.Context, id.ID) (tally.Frozen, bool, error) {
	return o.f, true, nil
}
func (o oneFinal) FinalPolls(context.Context) ([]id.ID, error) { return nil, nil }

// ledgerFixture is a frozen poll of n ballots, its signed head, and its
// export as JSON Lines and as CSV.
func ledgerFixture(t *testing.T, n int) (LedgerDeps, id.ID, []byte, []byte) {
	t.Helper()
	keys, _ := receipt.NewDevKeys()
	kr, err := receipt.ParseKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	pollID, opts := id.New(), []id.ID{id.New(), id.New(), id.New()}
	counts := tally.NewCounts()
	var entries []ledger.Entry
	var jl bytes.Buffer
	csv := "poll_id,voter,vote_id,option_ids,voted_at,anonymous,scores,commitment\n"
	for i := range n {
		e := ledger.Entry{VoteID: id.New()}
		e.Commitment[0], e.Commitment[5] = byte(i), byte(i>>8)
		entries = append(entries, e)
		o := opts[i%3]
		counts.Add([]id.ID{o})
		c := base64.RawURLEncoding.EncodeToString(e.Commitment[:])
		b, _ := json.Marshal(export.Record{PollID: pollID.String(), Voter: "v", VoteID: id.ID(e.VoteID).String(),
			OptionIDs: []string{o.String()}, VotedAt: time.Unix(0, 0).UTC(), Commitment: c})
		jl.Write(append(b, '\n'))
		csv += pollID.String() + ",v," + id.ID(e.VoteID).String() + "," + o.String() + ",1970-01-01T00:00:00.000Z,false,," + c + "\n"
	}
	l := ledger.Build(entries)
	asOf := time.Now()
	h := receipt.TreeHead{PollID: pollID, Size: l.Size(), Root: l.Root(), FrozenAt: asOf}
	if err := kr.SignHead(&h); err != nil {
		t.Fatal(err)
	}
	f := tally.Frozen{Counts: counts, AsOf: asOf,
		Ledger: &tally.LedgerHead{Root: h.Root, Size: h.Size, KeyID: h.KeyID, Sig: h.Sig}}
	d := LedgerDeps{Finals: oneFinal{f}, Keys: kr.Keys(),
		Layout: func(context.Context, id.ID) (Layout, error) { return Layout{Method: count.Plurality}, nil }}
	return d, pollID, jl.Bytes(), []byte(csv)
}

func TestLedgerMatchesItsExport(t *testing.T) {
	d, pollID, jl, csv := ledgerFixture(t, 50)
	for name, file := range map[string][]byte{"jsonl": jl, "csv": csv} {
		rep, err := Ledger(context.Background(), d, pollID, bytes.NewReader(file))
		if err != nil || !rep.Match || !rep.RootMatches || !rep.TallyMatches || !rep.SignatureValid || rep.Records != 50 {
			t.Fatalf("%s: %+v, %v", name, rep, err)
		}
	}
}

func TestLedgerCatchesAChangedByte(t *testing.T) {
	d, pollID, jl, _ := ledgerFixture(t, 50)
	lines := strings.Split(string(jl), "\n")
	var rec export.Record
	_ = json.Unmarshal([]byte(lines[7]), &rec)

	t.Run("a commitment", func(t *testing.T) {
		i := bytes.Index(jl, []byte(rec.Commitment))
		bad := bytes.Clone(jl)
		bad[i+3] ^= 1 // another base64url letter
		if bad[i+3] == '-' || bad[i+3] == '_' || bad[i+3] == '"' {
			bad[i+3] = 'A'
		}
		rep, err := Ledger(context.Background(), d, pollID, bytes.NewReader(bad))
		if err == nil && (rep.Match || rep.RootMatches) {
			t.Fatalf("a changed commitment matched: %+v", rep)
		}
	})
	t.Run("an option id", func(t *testing.T) {
		other := strings.Split(lines[8], `"option_ids":["`)[1][:36]
		bad := []byte(strings.Replace(string(jl), rec.OptionIDs[0], other, 1))
		if string(bad) == string(jl) {
			t.Skip("same option")
		}
		rep, err := Ledger(context.Background(), d, pollID, bytes.NewReader(bad))
		if err != nil || rep.Match || rep.TallyMatches || !rep.RootMatches {
			t.Fatalf("a changed option: %+v, %v", rep, err)
		}
	})
	t.Run("a dropped ballot", func(t *testing.T) {
		bad := strings.Join(append(append([]string{}, lines[:7]...), lines[8:]...), "\n")
		rep, err := Ledger(context.Background(), d, pollID, strings.NewReader(bad))
		if err != nil || rep.Match || rep.RootMatches || rep.TallyMatches {
			t.Fatalf("a dropped ballot: %+v, %v", rep, err)
		}
	})
	t.Run("a signature", func(t *testing.T) {
		f, _, _ := d.Finals.LoadFinal(context.Background(), pollID)
		h := *f.Ledger
		h.Sig = bytes.Clone(h.Sig)
		h.Sig[0] ^= 1
		f.Ledger = &h
		d2 := d
		d2.Finals = oneFinal{f}
		rep, err := Ledger(context.Background(), d2, pollID, bytes.NewReader(jl))
		if err != nil || rep.Match || rep.SignatureValid || !rep.RootMatches {
			t.Fatalf("a bad signature: %+v, %v", rep, err)
		}
	})
	t.Run("a malformed vote id", func(t *testing.T) {
		bad := []byte(strings.Replace(string(jl), rec.VoteID, "x"+rec.VoteID[1:], 1))
		if _, err := Ledger(context.Background(), d, pollID, bytes.NewReader(bad)); !errors.Is(err, ErrExportFile) {
			t.Fatalf("err = %v", err)
		}
	})
}
