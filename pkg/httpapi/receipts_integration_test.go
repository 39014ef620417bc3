//go:build integration

package httpapi_test

import (
	"encoding/hex"
	"net/http"
	"testing"

	"github.com/tally-vote/tally/pkg/httpapi"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/receipt"
)

// TestReceiptKeysServedByTheApp checks the wiring end to end: the key
// configured in TALLY_RECEIPT_KEYS (testenv's, RFC 8032 TEST 1's seed) is the
// one the whole process serves, and a receipt the app's ring signs verifies
// with nothing but what the route returned.
func TestReceiptKeysServedByTheApp(t *testing.T) {
	e := newEnv(t)
	res := e.c.Do(http.MethodGet, httpapi.ReceiptKeysPath, "", nil).Must(t, http.StatusOK)
	keys, ok := res.Body["keys"].([]any)
	if !ok || len(keys) != 1 {
		t.Fatalf("keys = %v", res.Body["keys"])
	}
	k := keys[0].(map[string]any)
	jwk := receipt.JWK{KeyID: k["kid"].(string), Kty: k["kty"].(string), Alg: k["alg"].(string),
		Crv: k["crv"].(string), X: k["x"].(string)}
	pub, err := receipt.PublicKeyFromJWK(jwk)
	if err != nil {
		t.Fatal(err)
	}
	const rfcPub = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	if hex.EncodeToString(pub) != rfcPub || k["active"] != true {
		t.Fatalf("served key %x (active %v), want RFC 8032 TEST 1's %s", pub, k["active"], rfcPub)
	}
	r := receipt.Receipt{PollID: id.New(), VoteID: id.New(), BallotVersion: 1}
	if err := e.app.Receipts.Sign(&r); err != nil {
		t.Fatal(err)
	}
	if r.KeyID != jwk.KeyID {
		t.Fatalf("signed with %s, served %s", r.KeyID, jwk.KeyID)
	}
	if err := r.VerifyWith(pub); err != nil {
		t.Fatal(err)
	}
}
