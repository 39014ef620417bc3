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
	base := inclusion.Answer{PollID: id.New(), VoteID: id.New(), Status: inclusion.Recorded, RecordedAt: at}
	keysOf := func(v receiptStatusJSON) []string {
		b, _ := json.Marshal(v)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		var ks []string
		for _, k := range []string{"commitment", "recorded_at", "leaf_index", "tree_size", "proof", "tree_head", "proof_withheld"} {
			if _, ok := m[k]; ok {
				ks = append(ks, k)
			}
		}
		return ks
	}
	rec := receiptStatusOf(base)
	if got := strings.Join(keysOf(rec), ","); got != "commitment,recorded_at" {
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
	if k := strings.Join(keysOf(got), ","); k != "commitment,recorded_at,leaf_index,tree_size,proof,tree_head" {
		t.Fatalf("included: keys %s", k)
	}
	if *got.LeafIndex != 3 || *got.TreeSize != 9 || len(got.Proof) != 2 || got.TreeHead.Alg != "EdDSA" ||
		got.TreeHead.FrozenAt != "2026-12-04T15:00:00.123Z" || got.Status != "included" {
		t.Fatalf("included: %+v", got)
	}

	wh := base
	wh.Status, wh.Withheld = inclusion.Included, true
	if k := strings.Join(keysOf(receiptStatusOf(wh)), ","); k != "commitment,recorded_at,proof_withheld" {
		t.Fatalf("withheld: keys %s", k)
	}

	// Every shape is what the document promises.
	doc := loadContract(t)
	for name, v := range map[string]receiptStatusJSON{"recorded": rec, "included": got, "withheld": receiptStatusOf(wh)} {
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
