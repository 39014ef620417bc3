package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/vote"
)

func TestValidate(t *testing.T) {
	key := []byte("0123456789abcdef")
	for _, tc := range []struct {
		name    string
		o       Options
		wantErr error // nil: valid; errAny: any error
	}{
		{"pseudonymous", Options{Format: CSV, PseudonymKey: key}, nil},
		{"real ids", Options{Format: JSONL, RealVoterIDs: true}, nil},
		{"no key", Options{Format: CSV}, ErrNoKey},
		{"short key", Options{Format: CSV, PseudonymKey: key[:15]}, errAny},
		{"key and real ids", Options{Format: CSV, PseudonymKey: key, RealVoterIDs: true}, errAny},
		{"bad format", Options{Format: "xml", PseudonymKey: key}, errAny},
		{"resume to stdout", Options{Format: CSV, PseudonymKey: key, Resume: true, Out: "-"}, errAny},
		{"resume to file", Options{Format: Parquet, PseudonymKey: key, Resume: true, Out: "x.parquet"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("valid options refused: %v", err)
			case tc.wantErr == errAny && err == nil, tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestPseudonym(t *testing.T) {
	a, b := id.New(), id.New()
	k1, k2 := []byte("key-one-0123456789"), []byte("key-two-0123456789")
	if Pseudonym(k1, a) != Pseudonym(k1, a) {
		t.Fatal("pseudonym not stable for one key")
	}
	if Pseudonym(k1, a) == Pseudonym(k2, a) {
		t.Fatal("two keys give one pseudonym")
	}
	if Pseudonym(k1, a) == Pseudonym(k1, b) {
		t.Fatal("two voters give one pseudonym")
	}
	if p := Pseudonym(k1, a); len(p) != 64 || strings.Contains(p, a.String()) {
		t.Fatalf("pseudonym %q is not a 64-digit hash", p)
	}
	if (voters{key: k1}).keyCheck() == (voters{key: k2}).keyCheck() {
		t.Fatal("key check does not tell keys apart")
	}
}

func TestRecordColumns(t *testing.T) {
	r := vote.Ballot{PollID: id.New(), VoterID: id.New(), VoteID: id.New(),
		OptionIDs: []id.ID{id.New(), id.New()},
		VotedAt:   time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.FixedZone("x", 3600)), IP: "10.0.0.1", UserAgent: "ua, \"quoted\""}
	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"default", Options{PseudonymKey: []byte("k")}, baseColumns},
		{"ip", Options{RealVoterIDs: true, IncludeIP: true}, append(append([]string{}, baseColumns...), "ip")},
		{"both", Options{RealVoterIDs: true, IncludeIP: true, IncludeUserAgent: true},
			append(append([]string{}, baseColumns...), "ip", "user_agent")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := voters{key: tc.o.PseudonymKey, real: tc.o.RealVoterIDs}
			rec := tc.o.record(v, r)
			f := csvFields(rec)
			if cols := tc.o.columns(); len(f) != len(cols) || strings.Join(cols, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("fields %v for columns %v, want columns %v", f, cols, tc.want)
			}
			if f[4] != "2026-01-02T02:04:05.006Z" {
				t.Fatalf("voted_at %q, want UTC with milliseconds", f[4])
			}
			if f[3] != r.OptionIDs[0].String()+";"+r.OptionIDs[1].String() {
				t.Fatalf("option_ids %q", f[3])
			}
			if tc.o.RealVoterIDs != (f[1] == r.VoterID.String()) {
				t.Fatalf("voter %q with real ids %v", f[1], tc.o.RealVoterIDs)
			}
		})
	}
}

func TestCheckpointDropsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.checkpoint")
	b0, b1 := 0, 1
	h := header{Version: checkpointVersion, Source: "votes", Format: CSV, Columns: baseColumns, KeyCheck: "k", Start: 10,
		Units: []Unit{{Bucket: &b0}, {Bucket: &b1}}}
	c, err := createCheckpoint(path, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.commit(1, 110, 3); err != nil {
		t.Fatal(err)
	}
	_ = c.close()
	// An interruption in the middle of the next line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	_, _ = f.WriteString(`{"unit":0,"end":2`)
	_ = f.Close()

	c, err = openCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.done) != 1 || !c.done[1] || c.end != 110 || c.rows != 3 {
		t.Fatalf("done %v end %d rows %d, want unit 1 at 110 with 3 rows", c.done, c.end, c.rows)
	}
	if err := c.commit(0, 150, 2); err != nil {
		t.Fatal(err)
	}
	_ = c.close()
	c, err = openCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.done) != 2 || c.end != 150 || c.rows != 5 {
		t.Fatalf("after the torn line was replaced: done %v end %d rows %d", c.done, c.end, c.rows)
	}
	if err := c.head.matches(h); err != nil {
		t.Fatal(err)
	}
	other := h
	other.KeyCheck = "other"
	if err := c.head.matches(other); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("another key resumed: %v", err)
	}
}

// TestScoresInEveryFormat: a score ballot's scores are written beside its
// options in CSV (joined by ';'), JSON Lines and Parquet, and read back
// from Parquet; other ballots leave the column empty.
func TestScoresInEveryFormat(t *testing.T) {
	o := Options{RealVoterIDs: true}
	v := voters{real: true}
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	scored := o.record(v, vote.Ballot{PollID: id.New(), VoterID: id.New(), VoteID: id.New(),
		OptionIDs: []id.ID{id.New(), id.New()}, Scores: []int{5, 0}, VotedAt: at})
	plain := o.record(v, vote.Ballot{PollID: id.New(), VoterID: id.New(), VoteID: id.New(),
		OptionIDs: []id.ID{id.New()}, VotedAt: at})
	if f := csvFields(scored); f[6] != "5;0" {
		t.Fatalf("csv scores %q", f[6])
	}
	if f := csvFields(plain); f[6] != "" {
		t.Fatalf("csv scores of a plain ballot %q", f[6])
	}
	var spool bytes.Buffer
	for _, r := range []Record{scored, plain} {
		line, _ := json.Marshal(r)
		spool.Write(append(line, '\n'))
	}
	if !strings.Contains(spool.String(), `"scores":[5,0]`) {
		t.Fatalf("json lines %s", spool.String())
	}
	path := filepath.Join(t.TempDir(), "x.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeParquet(f, &spool, o); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, cols, err := ReadParquet(path)
	if err != nil || len(got) != 2 || !slices.Contains(cols, "scores") {
		t.Fatalf("read parquet: %v, %d rows, columns %v", err, len(got), cols)
	}
	if !slices.Equal(got[0].Scores, []int{5, 0}) || got[1].Scores != nil {
		t.Fatalf("parquet scores %v, %v", got[0].Scores, got[1].Scores)
	}
}
