package vote

import (
	"testing"

	"github.com/tally-vote/tally/pkg/id"
)

func TestRequestIDs(t *testing.T) {
	ids := NewRequestIDs([]byte("a secret of the test, 32 bytes!!"))
	p, v := id.New(), id.New()
	a, b := ids.New(p, v, "key"), ids.New(p, v, "key")
	if a != b {
		t.Fatal("same poll, voter and key must give the same request id")
	}
	if a.Version() != 8 || a.Variant() != id.VariantIETF {
		t.Fatalf("not a v8 UUID: %s", a)
	}
	for name, other := range map[string]id.ID{
		"other key":   ids.New(p, v, "key2"),
		"other voter": ids.New(p, id.New(), "key"),
		"other poll":  ids.New(id.New(), v, "key"),
		"no key":      ids.New(p, v, ""),
	} {
		if other == a {
			t.Errorf("%s gave the same id", name)
		}
	}
	if ids.New(p, v, "") == ids.New(p, v, "") {
		t.Error("requests without a key must get fresh ids")
	}
	if other := NewRequestIDs([]byte("another secret, also 32 bytes!!!")); other.New(p, v, "key") == a {
		t.Error("the id does not depend on the secret")
	}
}

func TestRequestIDsRecogniseTheirOwn(t *testing.T) {
	ids := NewRequestIDs([]byte("a secret of the test, 32 bytes!!"))
	p, v := id.New(), id.New()
	keyed, fresh := ids.New(p, v, "key"), ids.New(p, v, "")
	if !ids.Issued(p, v, keyed) || !ids.Issued(p, v, fresh) {
		t.Fatal("an issued id is not recognised")
	}
	tampered := keyed
	tampered[15] ^= 1
	legacyV5 := NewRequestIDs(nil).New(p, v, "key") // what a client can derive from a key
	for name, id := range map[string]id.ID{
		"random":        id.New(),
		"tampered":      tampered,
		"v5 of a key":   legacyV5,
		"another voter": ids.New(p, id.New(), "key"),
		"another poll":  ids.New(id.New(), v, "key"),
	} {
		if ids.Issued(p, v, id) {
			t.Errorf("%s: recognised as issued", name)
		}
	}
	if NewRequestIDs(nil).New(p, v, "key").Version() != 5 {
		t.Error("unsealed keyed ids are name-based v5")
	}
}
