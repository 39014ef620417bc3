//go:build integration

package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/export"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
)

// storedVote is a votes row as Cassandra holds it, read without Tally's
// code.
type storedVote struct {
	voteID  string
	options []string
	votedAt time.Time
}

func storedVotes(t *testing.T, e *env, pollID string) map[string]storedVote {
	t.Helper()
	pid, _ := id.Parse(pollID)
	iter := e.app.CQL.Session.Query(`SELECT poll_id, voter_id, vote_id, option_ids, voted_at FROM votes`).Iter()
	rows := map[string]storedVote{}
	var (
		p, v, vid id.ID
		opts      []id.ID
		at        time.Time
	)
	for iter.Scan(&p, &v, &vid, &opts, &at) {
		if p == pid {
			s := storedVote{voteID: vid.String(), votedAt: at}
			for _, o := range opts {
				s.options = append(s.options, o.String())
			}
			rows[v.String()] = s
		}
		opts = nil
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("scan votes: %v", err)
	}
	return rows
}

// exportRow is one exported ballot, from either format.
type exportRow struct {
	voter, voteID string
	options       []string
	votedAt       string
}

func readCSVExport(t *testing.T, r testenv.Response) []exportRow {
	t.Helper()
	lines, err := csv.NewReader(bytes.NewReader(r.Raw)).ReadAll()
	if err != nil {
		t.Fatalf("export is not CSV: %v\n%s", err, r.Raw)
	}
	if got := strings.Join(lines[0], ","); got != "poll_id,voter,vote_id,option_ids,voted_at,anonymous,scores,commitment" {
		t.Fatalf("CSV header %q", got)
	}
	var out []exportRow
	for _, l := range lines[1:] {
		out = append(out, exportRow{voter: l[1], voteID: l[2], options: strings.Split(l[3], ";"), votedAt: l[4]})
	}
	return out
}

func readJSONLExport(t *testing.T, r testenv.Response) []exportRow {
	t.Helper()
	var out []exportRow
	sc := bufio.NewScanner(bytes.NewReader(r.Raw))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		for _, k := range []string{"ip", "user_agent", "device", "flags", "request_id", "idempotency_key"} {
			if _, ok := rec[k]; ok {
				t.Fatalf("export line carries %s: %s", k, sc.Text())
			}
		}
		row := exportRow{voter: rec["voter"].(string), voteID: rec["vote_id"].(string), votedAt: rec["voted_at"].(string)}
		for _, o := range rec["option_ids"].([]any) {
			row.options = append(row.options, o.(string))
		}
		out = append(out, row)
	}
	return out
}

// TestOwnerExport: the owner of a poll exports its ballots through the
// real API, on the real stack. The rows are the stored votes (count,
// vote ids, options, voted_at to the minute), voters are the poll's
// pseudonyms (stable between exports, different in another poll for the
// same voter, never the voter's id), IPs and user agents never appear;
// anyone else is refused, a bad format is 400, and the owner's export
// limit answers 429 with Retry-After.
func TestOwnerExport(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.RateLimit.ExportsPerHourPerUser = 5
	a, srv := testenv.Server(t, cfg)
	e := &env{app: a, c: testenv.NewClient(t, srv.URL)}

	owner, _ := e.c.Account()
	pollA, optsA := e.c.Poll(owner, nil)
	pollB, optsB := e.c.Poll(owner, nil)
	const voters = 30
	voterIDs := make([]string, voters)
	for i := range voters {
		tok, uid := e.c.Account()
		voterIDs[i] = uid
		e.c.Do("POST", "/v1/polls/"+pollA+"/votes", tok, map[string]any{"option_id": optsA[i%3]},
			"User-Agent", "export-test-agent/1.0").Must(t, http.StatusOK)
		if i < 5 { // the first five also vote in poll B
			e.c.Do("POST", "/v1/polls/"+pollB+"/votes", tok, map[string]any{"option_id": optsB[0]}).Must(t, http.StatusOK)
		}
	}

	// Refusals first: they cost the owner none of the limit.
	other, _ := e.c.Account()
	r := e.c.Do("GET", "/v1/polls/"+pollA+"/export?format=csv", other, nil).Must(t, http.StatusForbidden)
	if r.Code() != "NOT_POLL_OWNER" || len(storedVotes(t, e, pollA)) != voters {
		t.Fatalf("non-owner: %s", r.Raw)
	}
	r = e.c.Do("GET", "/v1/polls/"+pollA+"/export?format=xml", owner, nil).Must(t, http.StatusBadRequest)
	if r.Code() != "VALIDATION_FAILED" || r.Body["error"].(map[string]any)["field"] != "format" {
		t.Fatalf("bad format: %s", r.Raw)
	}
	e.c.Do("GET", "/v1/polls/"+pollA+"/export", "", nil).Must(t, http.StatusUnauthorized)
	e.c.Do("GET", "/v1/polls/"+id.New().String()+"/export", owner, nil).Must(t, http.StatusNotFound)

	stored := storedVotes(t, e, pollA)
	key := export.PollKey(cfg.ExportKey(), mustID(pollA))
	byPseudonym := map[string]string{} // pseudonym -> voter id
	for v := range stored {
		byPseudonym[export.Pseudonym(key, mustID(v))] = v
	}
	check := func(what string, rows []exportRow) map[string]string {
		t.Helper()
		if len(rows) != len(stored) || len(rows) != voters {
			t.Fatalf("%s: %d rows, %d stored votes, want %d", what, len(rows), len(stored), voters)
		}
		seen := map[string]string{} // voter id -> pseudonym
		for _, row := range rows {
			v, ok := byPseudonym[row.voter]
			if !ok {
				t.Fatalf("%s: voter %q is not the poll's pseudonym of any stored voter", what, row.voter)
			}
			if slices.Contains(voterIDs, row.voter) || strings.Contains(string(row.voter), v) {
				t.Fatalf("%s: voter column carries a voter id", what)
			}
			s := stored[v]
			if row.voteID != s.voteID || !slices.Equal(row.options, s.options) {
				t.Fatalf("%s: row %+v, stored %+v", what, row, s)
			}
			at, err := time.Parse(time.RFC3339Nano, row.votedAt)
			if err != nil || !at.Equal(s.votedAt.UTC().Truncate(time.Minute)) {
				t.Fatalf("%s: voted_at %q, stored %v, want it to the minute", what, row.votedAt, s.votedAt)
			}
			seen[v] = row.voter
		}
		return seen
	}

	r = e.c.Do("GET", "/v1/polls/"+pollA+"/export?format=csv", owner, nil).Must(t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cd := r.Header.Get("Content-Disposition"); cd != `attachment; filename=poll-`+pollA+`.csv` {
		t.Fatalf("Content-Disposition %q", cd)
	}
	if bytes.Contains(r.Raw, []byte("export-test-agent")) || bytes.Contains(r.Raw, []byte("127.0.0.1")) {
		t.Fatalf("export carries personal data:\n%s", r.Raw)
	}
	first := check("csv", readCSVExport(t, r))

	r = e.c.Do("GET", "/v1/polls/"+pollA+"/export?format=jsonl", owner, nil).Must(t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("Content-Type %q", ct)
	}
	second := check("jsonl", readJSONLExport(t, r))
	for v, p := range first {
		if second[v] != p {
			t.Fatalf("voter %s: pseudonym %s, then %s: not stable within the poll", v, p, second[v])
		}
	}

	// The same five voters in poll B: other pseudonyms, so the two polls'
	// exports cannot be joined.
	r = e.c.Do("GET", "/v1/polls/"+pollB+"/export?format=csv", owner, nil).Must(t, http.StatusOK)
	rowsB := readCSVExport(t, r)
	if len(rowsB) != 5 || len(storedVotes(t, e, pollB)) != 5 {
		t.Fatalf("poll B: %d rows", len(rowsB))
	}
	for _, row := range rowsB {
		if _, ok := byPseudonym[row.voter]; ok {
			t.Fatalf("a voter has one pseudonym in polls A and B: %s", row.voter)
		}
	}
	keyB := export.PollKey(cfg.ExportKey(), mustID(pollB))
	for _, v := range voterIDs[:5] {
		if !slices.ContainsFunc(rowsB, func(r exportRow) bool { return r.voter == export.Pseudonym(keyB, mustID(v)) }) {
			t.Fatalf("voter %s's pseudonym in poll B is missing", v)
		}
		if first[v] == export.Pseudonym(keyB, mustID(v)) {
			t.Fatalf("voter %s: same pseudonym in both polls", v)
		}
	}

	e.c.Do("GET", "/v1/polls/"+pollB+"/export?format=jsonl", owner, nil).Must(t, http.StatusOK)
	// A poll without ballots: no bytes at all in JSON Lines, and still the
	// export's headers (every bucket empty, nothing flushed before them).
	pollC, _ := e.c.Poll(owner, nil)
	r = e.c.Do("GET", "/v1/polls/"+pollC+"/export?format=jsonl", owner, nil).Must(t, http.StatusOK)
	if r.Header.Get("Content-Type") != "application/x-ndjson" || len(r.Raw) != 0 ||
		r.Header.Get("Content-Disposition") != `attachment; filename=poll-`+pollC+`.jsonl` {
		t.Fatalf("empty poll: %q %q %q", r.Header.Get("Content-Type"), r.Header.Get("Content-Disposition"), r.Raw)
	}

	// The fifth export in the hour is the last; the sixth is refused, from
	// the owner's account whatever the poll.
	must429(t, "sixth export", e.c.Do("GET", "/v1/polls/"+pollA+"/export?format=csv", owner, nil), 5)

	if got := metric(t, a.Registry, "tally_owner_exports_total", "format", "csv", "outcome", "finished"); got != 2 {
		t.Fatalf("finished csv exports %v, want 2", got)
	}
	if got := metric(t, a.Registry, "tally_export_rows_total", "source", "owner"); got != 2*voters+2*5 {
		t.Fatalf("exported rows %v, want %d", got, 2*voters+2*5)
	}
	for reason, want := range map[string]float64{"not_owner": 1, "bad_format": 1, "rate_limited": 1} {
		if got := metric(t, a.Registry, "tally_owner_export_refusals_total", "reason", reason); got != want {
			t.Fatalf("refusals %s = %v, want %v", reason, got, want)
		}
	}
}

func mustID(s string) id.ID {
	v, err := id.Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}
