package scan

import "testing"

func TestParseConsistency(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Consistency
		ok   bool
	}{
		{"local_quorum", "LOCAL_QUORUM", true},
		{"ONE", "ONE", true},
		{"Each_Quorum", "EACH_QUORUM", true},
		{"ANY", "", false},
		{"serial", "", false},
		{"", "", false},
		{"QUORUMS", "", false},
	} {
		got, err := ParseConsistency(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseConsistency(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
