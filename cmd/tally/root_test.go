package main

import "testing"

// TestOperatorCommands checks the operator commands are wired into the root
// with the flags and defaults the help texts name.
func TestOperatorCommands(t *testing.T) {
	root := newRootCmd()
	for _, tc := range []struct {
		path     []string
		flags    []string
		defaults map[string]string
	}{
		{[]string{"verify"}, []string{"poll", "repair", "repair-counters", "json", "grace", "splits", "workers"},
			map[string]string{"repair": "false", "repair-counters": "false"}},
		{[]string{"dlq", "list"}, []string{"json"}, nil},
		{[]string{"dlq", "replay"}, []string{"group", "poll", "dry-run", "json", "idle"},
			map[string]string{"group": "tally-dlq-replay", "dry-run": "false"}},
		{[]string{"receipt", "check"}, []string{"api", "keys", "proof"}, nil},
	} {
		cmd, _, err := root.Find(tc.path)
		if err != nil || cmd.Name() != tc.path[len(tc.path)-1] {
			t.Fatalf("tally %v: %v", tc.path, err)
		}
		for _, f := range tc.flags {
			if cmd.Flags().Lookup(f) == nil {
				t.Errorf("tally %v has no --%s", tc.path, f)
			}
		}
		for f, want := range tc.defaults {
			if got := cmd.Flags().Lookup(f).DefValue; got != want {
				t.Errorf("tally %v --%s defaults to %q, want %q", tc.path, f, got, want)
			}
		}
	}
}
