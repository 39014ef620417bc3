package vote

import (
	"testing"

	"github.com/gocql/gocql"
)

func TestRequestID(t *testing.T) {
	p, v := gocql.MustRandomUUID(), gocql.MustRandomUUID()
	a, b := RequestID(p, v, "key"), RequestID(p, v, "key")
	if a != b {
		t.Fatal("same poll, voter and key must give the same request id")
	}
	if a.Version() != 5 || a.Variant() != gocql.VariantIETF {
		t.Fatalf("not a v5 UUID: %s", a)
	}
	for name, other := range map[string]gocql.UUID{
		"other key":   RequestID(p, v, "key2"),
		"other voter": RequestID(p, gocql.MustRandomUUID(), "key"),
		"other poll":  RequestID(gocql.MustRandomUUID(), v, "key"),
		"no key":      RequestID(p, v, ""),
	} {
		if other == a {
			t.Errorf("%s gave the same id", name)
		}
	}
	if RequestID(p, v, "") == RequestID(p, v, "") {
		t.Error("requests without a key must get fresh ids")
	}
}
