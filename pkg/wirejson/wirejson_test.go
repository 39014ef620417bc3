package wirejson

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tally-vote/tally/pkg/id"
)

// samples are strings that exercise every branch of String: escapes,
// HTML characters, control bytes, the JavaScript line separators, invalid
// and truncated UTF-8, and plain text of several scripts.
var samples = []string{
	"", "plain", `"quoted"`, `back\slash`, "<script>&amp;</script>", "tab\there", "new\nline\r\n",
	"\b\f\x00\x01\x1f\x7f", "\u2028\u2029", "a\u2028b\u2029c", "é ü ß 日本語 🗳️ 👩‍👩‍👧", "\xff", "\xc3", "a\xc3(b",
	"\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\uFFFD", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/124.0",
	"2001:db8::1", "203.0.113.7", "key with spaces ", "'single'", "/slash/", "{}[]:,",
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStringMatchesEncodingJSON(t *testing.T) {
	check := func(s string) {
		t.Helper()
		if got, want := String(nil, s), marshal(t, s); !bytes.Equal(got, want) {
			t.Fatalf("String(%q) = %s, encoding/json %s", s, got, want)
		}
	}
	for _, s := range samples {
		check(s)
	}
	for b := range 256 {
		check(string([]byte{byte(b)}))
		check("x" + string([]byte{byte(b)}) + "y")
	}
	for r := rune(0); r < 0x3000; r++ {
		check(string(r))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(2) == 0 {
				b[i] = byte(0x20 + rng.IntN(0x60)) // mostly ASCII
			}
		}
		check(string(b))
	}
}

func FuzzString(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := String([]byte("prefix"), s), append([]byte("prefix"), marshal(t, s)...); !bytes.Equal(got, want) {
			t.Fatalf("String(%q) = %s, encoding/json %s", s, got, want)
		}
		if !utf8.Valid(String(nil, s)) {
			t.Fatalf("String(%q) is not UTF-8", s)
		}
	})
}

func TestIDsMatchEncodingJSON(t *testing.T) {
	for _, ids := range [][]id.ID{nil, {}, {id.New()}, {id.New(), {}, {0xff, 0xee, 0x01}}} {
		if got, want := IDs(nil, ids), marshal(t, ids); !bytes.Equal(got, want) {
			t.Fatalf("IDs(%v) = %s, encoding/json %s", ids, got, want)
		}
	}
	for range 1000 {
		u := id.New()
		if got, want := ID(nil, u), marshal(t, u); !bytes.Equal(got, want) {
			t.Fatalf("ID = %s, encoding/json %s", got, want)
		}
	}
}

func TestStringsMatchEncodingJSON(t *testing.T) {
	for _, ss := range [][]string{nil, {}, {""}, samples, {"ip_burst", "device_reuse"}} {
		if got, want := Strings(nil, ss), marshal(t, ss); !bytes.Equal(got, want) {
			t.Fatalf("Strings(%q) = %s, encoding/json %s", ss, got, want)
		}
	}
}

func TestTimeMatchesEncodingJSON(t *testing.T) {
	base := time.Date(2026, 12, 3, 16, 4, 5, 0, time.UTC)
	zones := []*time.Location{time.UTC, time.FixedZone("", 5*3600+30*60), time.FixedZone("", -8*3600), time.FixedZone("X", 59)}
	if l, err := time.LoadLocation("Europe/Berlin"); err == nil {
		zones = append(zones, l)
	}
	var times []time.Time
	for _, ns := range []int{0, 1, 100, 123000000, 120000000, 999999999} {
		for _, z := range zones {
			times = append(times, base.Add(time.Duration(ns)).In(z))
		}
	}
	times = append(times, time.Time{}, time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Now(), time.Now().UTC().Truncate(time.Millisecond))
	for _, tm := range times {
		got, err := Time([]byte("p"), tm)
		if want := append([]byte("p"), marshal(t, tm)...); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Time(%v) = %s %v, encoding/json %s", tm, got, err, want)
		}
	}
	// What encoding/json cannot write, Time refuses too.
	for _, tm := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		base.In(time.FixedZone("", 24*3600))} {
		if _, jerr := json.Marshal(tm); jerr == nil {
			t.Fatalf("encoding/json wrote %v", tm)
		}
		if b, err := Time(nil, tm); err == nil {
			t.Fatalf("Time(%v) = %s, want an error", tm, b)
		}
	}
}
