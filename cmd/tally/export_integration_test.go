//go:build integration

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/export"
	"github.com/tally-vote/tally/pkg/id"
)

// TestExportCLI runs `tally export` as an analyst would: it refuses to run
// without a pseudonym key, writes pseudonyms with one and real ids only with
// --real-voter-ids, and leaves a Parquet file the library reads back.
func TestExportCLI(t *testing.T) {
	r := newCLIRig(t)
	env, bin, ctx, s := r.env, r.bin, r.ctx, r.s
	pollID, voter := id.New(), id.New()
	if err := s.Session.Query(`INSERT INTO votes (poll_id, voter_id, option_ids, vote_id, request_id, voted_at, ip)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, pollID, voter, []id.ID{id.New()}, id.New(),
		id.New(), time.Now(), "192.0.2.7").WithContext(ctx).Exec(); err != nil {
		t.Fatal(err)
	}

	if out, code := runTally(t, bin, env, "export", "--format", "jsonl"); code == 0 || len(out) != 0 {
		t.Fatalf("export without a key: exit %d, %d bytes out", code, len(out))
	}
	key := "cli-test-key-0123456789"
	out, code := runTally(t, bin, append(env, "TALLY_EXPORT_PSEUDONYM_KEY="+key), "export", "--format", "jsonl")
	if code != 0 || !strings.Contains(string(out), export.Pseudonym([]byte(key), voter)) ||
		strings.Contains(string(out), voter.String()) || strings.Contains(string(out), "192.0.2.7") {
		t.Fatalf("pseudonymous export: exit %d:\n%s", code, out)
	}
	out, code = runTally(t, bin, env, "export", "--format", "csv", "--real-voter-ids", "--include-ip")
	if code != 0 || !strings.Contains(string(out), voter.String()) || !strings.Contains(string(out), "192.0.2.7") ||
		!strings.HasPrefix(string(out), "poll_id,voter,vote_id,option_ids,voted_at,anonymous,scores,commitment,ip\n") {
		t.Fatalf("export with real ids and ip: exit %d:\n%s", code, out)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pq := filepath.Join(t.TempDir(), "votes.parquet")
	if _, code = runTally(t, bin, env, "export", "--format", "parquet", "--out", pq, "--pseudonym-key-file", keyFile,
		"--poll", pollID.String()); code == 0 {
		t.Fatal("export of a poll without metadata succeeded")
	}
	if _, code = runTally(t, bin, env, "export", "--format", "parquet", "--out", pq, "--pseudonym-key-file", keyFile); code != 0 {
		t.Fatalf("parquet export: exit %d", code)
	}
	recs, cols, err := export.ReadParquet(pq)
	if err != nil || len(recs) != 1 || recs[0].Voter != export.Pseudonym([]byte(key), voter) || len(cols) != 8 {
		t.Fatalf("parquet file: %v, %+v, columns %v", err, recs, cols)
	}
}
