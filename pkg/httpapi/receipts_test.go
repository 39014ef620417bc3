package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/receipt"
)

// getReceiptKeys serves the ring through the real router and returns the
// decoded body, checked against the document's ReceiptKeySet schema.
func getReceiptKeys(t *testing.T, kr *receipt.Keyring) receiptKeySet {
	t.Helper()
	r, err := NewRouter(Deps{Log: zap.NewNop(), Registry: prometheus.NewRegistry(), Now: time.Now, ReceiptKeys: kr})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, ReceiptKeysPath, nil))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != receiptKeysMaxAge {
		t.Fatalf("Cache-Control %q", cc)
	}
	var raw any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	schema := loadContract(t).Components.Schemas["ReceiptKeySet"]
	if schema == nil {
		t.Fatal("openapi.yaml has no ReceiptKeySet")
	}
	if err := schema.Value.VisitJSON(raw); err != nil {
		t.Fatalf("body does not match ReceiptKeySet: %v\n%s", err, w.Body)
	}
	var set receiptKeySet
	if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	return set
}

func TestReceiptKeysRoute(t *testing.T) {
	oldKeys, _ := receipt.NewDevKeys()
	newKeys, _ := receipt.NewDevKeys()
	old, err := receipt.ParseKeys(oldKeys)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := receipt.ParseKeys(newKeys + "," + oldKeys)
	if err != nil {
		t.Fatal(err)
	}
	// One receipt from before the rotation, one after.
	before := receipt.Receipt{PollID: id.New(), VoteID: id.New(), RecordedAt: time.Now(), BallotVersion: 1}
	after := receipt.Receipt{PollID: id.New(), VoteID: id.New(), RecordedAt: time.Now(), BallotVersion: 2}
	if err := old.Sign(&before); err != nil {
		t.Fatal(err)
	}
	if err := ring.Sign(&after); err != nil {
		t.Fatal(err)
	}

	set := getReceiptKeys(t, ring)
	if len(set.Keys) != 2 || !set.Keys[0].Active || set.Keys[1].Active {
		t.Fatalf("keys = %+v", set.Keys)
	}
	// A verifier with nothing but the served set checks both receipts: it
	// picks the key by kid and needs no Tally state.
	served := map[string]receipt.JWK{}
	for _, k := range set.Keys {
		served[k.KeyID] = k
	}
	for name, r := range map[string]receipt.Receipt{"before rotation": before, "after rotation": after} {
		jwk, ok := served[r.KeyID]
		if !ok {
			t.Fatalf("%s: kid %s not served", name, r.KeyID)
		}
		pub, err := receipt.PublicKeyFromJWK(jwk)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.VerifyWith(pub); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if set.Keys[0].KeyID != after.KeyID {
		t.Fatalf("active key %s, new receipt signed by %s", set.Keys[0].KeyID, after.KeyID)
	}
}

func TestReceiptKeysRouteWithoutKeys(t *testing.T) {
	if set := getReceiptKeys(t, nil); len(set.Keys) != 0 {
		t.Fatalf("keys = %+v", set.Keys)
	}
}
