package receipt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

func TestIssueAndJSONRoundTrip(t *testing.T) {
	kr, _ := ParseKeys(seedB64(t, rfcSeed))
	choice := []id.ID{fixedID(0x40)}
	at := time.Date(2026, 12, 3, 21, 0, 0, 987654321, time.FixedZone("CET", 3600))
	r, salt, err := kr.Issue(fixedID(0x10), fixedID(0x20), choice, at, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"recorded_at":"2026-12-03T20:00:00.987Z"`) || !strings.Contains(string(b), `"alg":"EdDSA"`) {
		t.Fatalf("wire form %s", b)
	}
	var back Receipt
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := kr.Verify(&back); err != nil {
		t.Fatalf("receipt read back from JSON: %v", err)
	}
	s, err := DecodeSalt(EncodeSalt(salt))
	if err != nil {
		t.Fatal(err)
	}
	if err := back.OpenCommitment(s, choice); err != nil {
		t.Fatal(err)
	}
	// Two issues of the same ballot use different salts, so equal choices do
	// not give equal commitments in the public ledger.
	r2, _, _ := kr.Issue(fixedID(0x10), fixedID(0x20), choice, at, 1)
	if r2.Commitment == r.Commitment {
		t.Fatal("two receipts for the same choice share a commitment")
	}

	// A changed field in the JSON fails verification after decoding.
	tampered := strings.Replace(string(b), `"ballot_version":1`, `"ballot_version":2`, 1)
	var bad Receipt
	if err := json.Unmarshal([]byte(tampered), &bad); err != nil {
		t.Fatal(err)
	}
	if err := kr.Verify(&bad); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered JSON: %v", err)
	}
	for _, in := range []string{
		strings.Replace(string(b), `"alg":"EdDSA"`, `"alg":"none"`, 1),
		strings.Replace(string(b), `"commitment":"`, `"commitment":"AA`, 1),
		strings.Replace(string(b), `"recorded_at":"2026`, `"recorded_at":"x2026`, 1),
	} {
		if err := json.Unmarshal([]byte(in), &bad); err == nil {
			t.Fatalf("accepted %s", in)
		}
	}
	if _, err := DecodeSalt("AAAA"); !errors.Is(err, ErrBadSalt) {
		t.Fatalf("short salt: %v", err)
	}
}

func TestIssueWithoutKey(t *testing.T) {
	kr, _ := ParseKeys("")
	if _, _, err := kr.Issue(id.New(), id.New(), nil, time.Now(), 1); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("err = %v", err)
	}
}
