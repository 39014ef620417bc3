package ledger_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/receipt"
)

// receiptFixture is a frozen poll of 37 ballots, one receipt file for
// ballot 11, the served keys and the route's answer for it, all built
// through the same wire forms the server and the page write.
type receiptFixture struct {
	file    ledger.ReceiptFile
	keys    ledger.KeySet
	proof   ledger.ProofAnswer
	options []id.ID
}

func newReceiptFixture(t *testing.T) receiptFixture {
	t.Helper()
	spec, _ := receipt.NewDevKeys()
	kr, err := receipt.ParseKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	poll := id.New()
	opts := []id.ID{id.New(), id.New(), id.New()}
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var entries []ledger.Entry
	var mine receipt.Receipt
	var mySalt []byte
	for i := range 37 {
		r, salt, err := kr.Issue(poll, id.New(), opts[i%3:i%3+1], at, 1)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, ledger.Entry{VoteID: r.VoteID, Commitment: r.Commitment})
		if i == 11 {
			mine, mySalt = r, salt
		}
	}
	l := ledger.Build(entries)
	head := receipt.TreeHead{PollID: poll, Size: l.Size(), Root: l.Root(), FrozenAt: at.Add(time.Hour)}
	if err := kr.SignHead(&head); err != nil {
		t.Fatal(err)
	}
	pr, ok := l.Prove(mine.VoteID)
	if !ok {
		t.Fatal("own ballot not in the ledger")
	}
	b64 := base64.RawURLEncoding.EncodeToString
	path := make([]string, len(pr.Path))
	for i, h := range pr.Path {
		path[i] = b64(h[:])
	}
	idx, size := pr.Index, pr.Size
	f := receiptFixture{
		file: ledger.ReceiptFile{Receipt: mine, Salt: receipt.EncodeSalt(mySalt),
			Choice: &ledger.FileChoice{OptionIDs: []id.ID{opts[11%3]}}},
		keys: ledger.KeySet{Keys: kr.JWKs()},
		proof: ledger.ProofAnswer{PollID: poll.String(), VoteID: mine.VoteID.String(), Status: "included",
			Commitment: b64(mine.Commitment[:]), LeafIndex: &idx, TreeSize: &size, Proof: path,
			TreeHead: &ledger.HeadWire{PollID: poll.String(), Size: head.Size, Root: b64(head.Root[:]),
				FrozenAt: head.FrozenAt.Format("2006-01-02T15:04:05.000Z07:00"), KeyID: head.KeyID, Alg: "EdDSA", Sig: b64(head.Sig)}},
		options: opts,
	}
	// Everything goes through JSON, as it does between server, page and CLI.
	roundTrip(t, &f.file)
	roundTrip(t, &f.keys)
	roundTrip(t, &f.proof)
	return f
}

func roundTrip[T any](t *testing.T, v *T) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	*v = out
}

func flipB64(s string) string {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	b[len(b)/2] ^= 1
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestCheckReceipt(t *testing.T) {
	fx := newReceiptFixture(t)
	type want map[string]ledger.Outcome
	all := want{ledger.StepSignature: ledger.Passed, ledger.StepOpening: ledger.Passed,
		ledger.StepInclusion: ledger.Passed, ledger.StepHead: ledger.Passed}
	cases := []struct {
		name   string
		change func(in *ledger.CheckInput)
		want   want
		detail string // a step's detail must contain it
		// mustFail: the report fails, at whichever step (a bigger tree
		// can keep some leaves' paths; its head's signature then fails).
		mustFail bool
	}{
		{name: "good", change: func(*ledger.CheckInput) {}, want: all},
		{name: "good, no choice in the file, options known", change: func(in *ledger.CheckInput) {
			in.File.Choice = nil
			in.Options = fx.options
		}, want: all},
		{name: "good, offline without a proof", change: func(in *ledger.CheckInput) { in.Proof = nil },
			want: want{ledger.StepSignature: ledger.Passed, ledger.StepOpening: ledger.Passed, ledger.StepInclusion: ledger.Skipped}},
		{name: "no keys", change: func(in *ledger.CheckInput) { in.Keys = nil },
			want: want{ledger.StepSignature: ledger.Skipped, ledger.StepInclusion: ledger.Passed, ledger.StepHead: ledger.Skipped}},
		{name: "recorded, not frozen", change: func(in *ledger.CheckInput) {
			in.Proof = &ledger.ProofAnswer{PollID: in.Proof.PollID, VoteID: in.Proof.VoteID, Status: "recorded", Commitment: in.Proof.Commitment}
		}, want: want{ledger.StepSignature: ledger.Passed, ledger.StepInclusion: ledger.Pending}},
		{name: "proof withheld", change: func(in *ledger.CheckInput) {
			in.Proof = &ledger.ProofAnswer{PollID: in.Proof.PollID, VoteID: in.Proof.VoteID, Status: "included",
				Commitment: in.Proof.Commitment, ProofWithheld: "results_hidden"}
		}, want: want{ledger.StepInclusion: ledger.Pending}, detail: "withheld"},

		{name: "commitment changed in the receipt", change: func(in *ledger.CheckInput) { in.File.Receipt.Commitment[3] ^= 1 },
			want: want{ledger.StepSignature: ledger.Failed, ledger.StepOpening: ledger.Failed, ledger.StepInclusion: ledger.Failed}},
		{name: "recorded time changed", change: func(in *ledger.CheckInput) {
			in.File.Receipt.RecordedAt = in.File.Receipt.RecordedAt.Add(time.Millisecond)
		}, want: want{ledger.StepSignature: ledger.Failed, ledger.StepOpening: ledger.Passed, ledger.StepInclusion: ledger.Passed}},
		{name: "signature changed", change: func(in *ledger.CheckInput) { in.File.Receipt.Signature[0] ^= 1 },
			want: want{ledger.StepSignature: ledger.Failed}},
		{name: "kid relabelled", change: func(in *ledger.CheckInput) { in.File.Receipt.KeyID = "AAAAAAAAAAA" },
			want: want{ledger.StepSignature: ledger.Failed}, detail: "no key"},
		{name: "another key set", change: func(in *ledger.CheckInput) {
			spec, _ := receipt.NewDevKeys()
			kr, _ := receipt.ParseKeys(spec)
			in.Keys = &ledger.KeySet{Keys: kr.JWKs()}
		}, want: want{ledger.StepSignature: ledger.Failed, ledger.StepHead: ledger.Failed}},
		{name: "served key with a wrong kid", change: func(in *ledger.CheckInput) {
			ks := *in.Keys
			ks.Keys = append([]receipt.JWK(nil), ks.Keys...)
			ks.Keys[0].X = flipB64(ks.Keys[0].X)
			in.Keys = &ks
		}, want: want{ledger.StepSignature: ledger.Failed}, detail: "does not match its kid"},
		{name: "salt changed", change: func(in *ledger.CheckInput) { in.File.Salt = flipB64(in.File.Salt) },
			want: want{ledger.StepSignature: ledger.Passed, ledger.StepOpening: ledger.Failed}},
		{name: "salt too short", change: func(in *ledger.CheckInput) { in.File.Salt = in.File.Salt[:10] },
			want: want{ledger.StepOpening: ledger.Failed}},
		{name: "another choice", change: func(in *ledger.CheckInput) {
			in.File.Choice = &ledger.FileChoice{OptionIDs: []id.ID{fx.options[0]}}
		}, want: want{ledger.StepOpening: ledger.Failed}},
		{name: "no choice and an option the ballot is not for", change: func(in *ledger.CheckInput) {
			in.File.Choice = nil
			in.Options = fx.options[:2]
		}, want: want{ledger.StepOpening: ledger.Failed}},
		{name: "proof hash changed", change: func(in *ledger.CheckInput) {
			p := *in.Proof
			p.Proof = append([]string(nil), p.Proof...)
			p.Proof[1] = flipB64(p.Proof[1])
			in.Proof = &p
		}, want: want{ledger.StepSignature: ledger.Passed, ledger.StepInclusion: ledger.Failed}},
		{name: "leaf index moved", change: func(in *ledger.CheckInput) {
			p := *in.Proof
			i := *p.LeafIndex + 1
			p.LeafIndex = &i
			in.Proof = &p
		}, want: want{ledger.StepInclusion: ledger.Failed}},
		{name: "root changed in the head", change: func(in *ledger.CheckInput) {
			p := *in.Proof
			h := *p.TreeHead
			h.Root = flipB64(h.Root)
			p.TreeHead = &h
			in.Proof = &p
		}, want: want{ledger.StepInclusion: ledger.Failed}},
		{name: "head size and tree size both changed", change: func(in *ledger.CheckInput) {
			p := *in.Proof
			h := *p.TreeHead
			h.Size++
			s := h.Size
			p.TreeHead, p.TreeSize = &h, &s
			in.Proof = &p
		}, want: want{ledger.StepSignature: ledger.Passed}, mustFail: true},
		{name: "head signature changed", change: func(in *ledger.CheckInput) {
			p := *in.Proof
			h := *p.TreeHead
			h.Sig = flipB64(h.Sig)
			p.TreeHead = &h
			in.Proof = &p
		}, want: want{ledger.StepInclusion: ledger.Passed, ledger.StepHead: ledger.Failed}},
		{name: "head frozen_at changed", change: func(in *ledger.CheckInput) {
			p := *in.Proof
			h := *p.TreeHead
			h.FrozenAt = "2026-12-04T11:00:00.001Z"
			p.TreeHead = &h
			in.Proof = &p
		}, want: want{ledger.StepHead: ledger.Failed}},
		{name: "another ballot's proof", change: func(in *ledger.CheckInput) {
			p := *in.Proof
			p.VoteID = id.New().String()
			in.Proof = &p
		}, want: want{ledger.StepInclusion: ledger.Failed}, detail: "not this receipt's"},
		{name: "ledger holds another commitment", change: func(in *ledger.CheckInput) {
			p := *in.Proof
			p.Commitment = flipB64(p.Commitment)
			in.Proof = &p
		}, want: want{ledger.StepInclusion: ledger.Failed}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Deep copies through JSON: cases mutate.
			file, keys, proof := fx.file, fx.keys, fx.proof
			roundTrip(t, &file)
			roundTrip(t, &keys)
			roundTrip(t, &proof)
			in := ledger.CheckInput{File: file, Keys: &keys, Proof: &proof}
			tc.change(&in)
			rep := ledger.CheckReceipt(in)
			got := map[string]ledger.Outcome{}
			var details []string
			for _, s := range rep.Steps {
				got[s.Name] = s.Outcome
				details = append(details, s.Name+": "+string(s.Outcome)+" "+s.Detail)
			}
			failed := false
			for step, o := range tc.want {
				if got[step] != o {
					t.Errorf("%s = %q, want %q", step, got[step], o)
				}
				failed = failed || o == ledger.Failed
			}
			failed = failed || tc.mustFail
			if rep.OK() == failed {
				t.Errorf("OK() = %v with steps %v", rep.OK(), details)
			}
			if tc.detail != "" && !strings.Contains(strings.Join(details, "\n"), tc.detail) {
				t.Errorf("no step says %q:\n%s", tc.detail, strings.Join(details, "\n"))
			}
			if t.Failed() {
				t.Logf("steps:\n%s", strings.Join(details, "\n"))
			}
		})
	}
}

func TestParseReceiptFile(t *testing.T) {
	fx := newReceiptFixture(t)
	b, _ := json.Marshal(fx.file)
	f, err := ledger.ParseReceiptFile(b)
	if err != nil || f.Receipt.VoteID != fx.file.Receipt.VoteID || f.Salt != fx.file.Salt {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{`[]`, `{}`, `{"receipt": {"alg": "RS256"}}`, `not json`} {
		if _, err := ledger.ParseReceiptFile([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
