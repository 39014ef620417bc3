package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/inclusion"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/tally"
)

func TestReceiptStatusShapes(t *testing.T) {
	at := time.Date(2026, 12, 4, 15, 0, 0, 123456789, time.UTC)
	base := inclusion.Answer{PollID: id.New(), VoteID: id.New(), Status: inclusion.Recorded, RecordedAt: at, CurrentVersion: 1}
	keysOf := func(v ledger.ProofAnswer) []string {
		b, _ := json.Marshal(v)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		var ks []string
		for _, k := range []string{"current_version", "commitment", "recorded_at", "leaf_index", "tree_size", "proof", "tree_head", "proof_withheld"} {
			if _, ok := m[k]; ok {
				ks = append(ks, k)
			}
		}
		return ks
	}
	rec := receiptStatusOf(base)
	if got := strings.Join(keysOf(rec), ","); got != "current_version,commitment,recorded_at" {
		t.Fatalf("recorded: keys %s", got)
	}
	if rec.Commitment != strings.Repeat("A", 43) || rec.RecordedAt != "2026-12-04T15:00:00.123Z" {
		t.Fatalf("recorded: %+v (a ballot without commitment shows 32 zero bytes)", rec)
	}

	inc := base
	inc.Status = inclusion.Included
	inc.Proof = &ledger.Proof{Index: 3, Size: 9, Path: []ledger.Hash{{1}, {2}}}
	inc.Head = &receipt.TreeHead{PollID: base.PollID, Size: 9, FrozenAt: at, KeyID: "k", Sig: []byte{1, 2}}
	got := receiptStatusOf(inc)
	if k := strings.Join(keysOf(got), ","); k != "current_version,commitment,recorded_at,leaf_index,tree_size,proof,tree_head" {
		t.Fatalf("included: keys %s", k)
	}
	if *got.LeafIndex != 3 || *got.TreeSize != 9 || len(got.Proof) != 2 || got.TreeHead.Alg != "EdDSA" ||
		got.TreeHead.FrozenAt != "2026-12-04T15:00:00.123Z" || got.Status != "included" {
		t.Fatalf("included: %+v", got)
	}

	wh := base
	wh.Status, wh.Withheld = inclusion.Included, true
	if k := strings.Join(keysOf(receiptStatusOf(wh)), ","); k != "current_version,commitment,recorded_at,proof_withheld" {
		t.Fatalf("withheld: keys %s", k)
	}

	// A superseded or revoked receipt: the current version's number, never
	// its commitment (nor a proof).
	sup := base
	sup.Status, sup.CurrentVersion, sup.Commitment = inclusion.Superseded, 3, []byte{9}
	supJ := receiptStatusOf(sup)
	if k := strings.Join(keysOf(supJ), ","); k != "current_version,recorded_at" || supJ.CurrentVersion != 3 || supJ.Status != "superseded" {
		t.Fatalf("superseded: keys %s, %+v", k, supJ)
	}
	rev := base
	rev.Status, rev.CurrentVersion = inclusion.Revoked, 2
	revJ := receiptStatusOf(rev)
	if k := strings.Join(keysOf(revJ), ","); k != "current_version,recorded_at" || revJ.Status != "revoked" {
		t.Fatalf("revoked: keys %s, %+v", k, revJ)
	}

	// Every shape is what the document promises.
	doc := loadContract(t)
	for name, v := range map[string]ledger.ProofAnswer{"recorded": rec, "included": got, "withheld": receiptStatusOf(wh),
		"superseded": supJ, "revoked": revJ} {
		b, _ := json.Marshal(v)
		if !validAgainst(t, doc, "ReceiptStatus", string(b)) {
			t.Fatalf("%s answer does not match ReceiptStatus: %s", name, b)
		}
	}
	cert := tally.CertificateOf(tally.Frozen{Counts: tally.NewCounts(), AsOf: at,
		Ledger: &tally.LedgerHead{Size: 9, KeyID: "k", Sig: make([]byte, 64), Uncommitted: 2}})
	b, _ := json.Marshal(cert)
	if !validAgainst(t, doc, "TallyCertificate", string(b)) || !strings.Contains(string(b), `"ledger":{"root":"AAAA`) {
		t.Fatalf("certificate with a ledger does not match TallyCertificate: %s", b)
	}
}
