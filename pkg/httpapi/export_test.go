package httpapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/vote"
)

// scriptedSource plays one export's reads: bucket 0 yields a ballot, and
// bucket 1 does what then says (block until the request's context ends,
// or fail). The Cassandra reads themselves are the integration tests'.
type scriptedSource struct {
	first      bool // bucket 0 fails instead
	then       string
	cancelled  chan struct{}
	bucketsHit chan int
}

func (s *scriptedSource) Plan(context.Context, int) []scan.Range { return nil }
func (s *scriptedSource) Range(context.Context, scan.Range, scan.Consistency, func(vote.Ballot) error) error {
	return nil
}
func (s *scriptedSource) Buckets(context.Context, id.ID) (int, error) { return 4, nil }
func (s *scriptedSource) Bucket(ctx context.Context, pollID id.ID, b int, _ scan.Consistency, fn func(vote.Ballot) error) (int64, error) {
	s.bucketsHit <- b
	switch {
	case b == 0 && s.first:
		return 0, errors.New("cassandra: no hosts available")
	case b == 0:
		return 0, fn(vote.Ballot{PollID: pollID, VoterID: id.New(), VoteID: id.New(), OptionIDs: []id.ID{id.New()}, VotedAt: rigNow})
	case s.then == "block":
		<-ctx.Done()
		close(s.cancelled)
		return 0, ctx.Err()
	}
	return 0, errors.New("cassandra: read timeout")
}

type exportRig struct {
	srv   *httptest.Server
	reg   *prometheus.Registry
	poll  poll.Poll
	token string
}

func newExportRig(t *testing.T, src *scriptedSource) *exportRig {
	t.Helper()
	now := func() time.Time { return rigNow }
	owner := id.New()
	p := poll.Poll{ID: id.New(), CreatorID: owner, Title: "p", StartTime: rigNow.Add(-time.Hour), EndTime: rigNow.Add(time.Hour),
		CreatedAt: rigNow, UpdatedAt: rigNow, Settings: poll.DefaultSettings, CounterShards: 4, IndexBuckets: 4,
		Options: []poll.Option{{ID: id.New(), Text: "a"}, {ID: id.New(), Text: "b", DisplayOrder: 1}}}
	reg := prometheus.NewRegistry()
	log := zap.NewNop()
	rec := &recorder{}
	tokens := auth.NewTokens(rigSecret, time.Hour, now)
	polls := poll.NewService(poll.Config{CounterShards: 4, IndexBuckets: 4, CacheTTL: time.Hour},
		poll.Deps{Store: pollBoundary{rec: rec, polls: map[id.ID]poll.Poll{p.ID: p}}, Votes: noVotes{},
			Cursors: poll.NewCursors([]byte(rigSecret)), Log: log, Now: now})
	h, err := NewRouter(Deps{Log: log, Registry: reg, Now: now, PublicURL: "http://tally.test",
		Auth:    auth.NewService(auth.Config{TokenTTL: time.Hour, BcryptCost: bcrypt.MinCost}, userBoundary{rec}, tokens, log, now),
		Polls:   polls,
		Limiter: ratelimit.New(ratelimit.Config{}, nil, log, now, reg), // no limits: never reaches Redis
		Exports: src, ExportKey: []byte(rigSecret)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokens.Issue(auth.Principal{UserID: owner})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &exportRig{srv: srv, reg: reg, poll: p, token: tok.AccessToken}
}

func (r *exportRig) get(ctx context.Context, t *testing.T) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.srv.URL+"/v1/polls/"+r.poll.ID.String()+"/export?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func (r *exportRig) outcome(outcome string) float64 {
	return testutil.ToFloat64(newCounterView(r.reg, "tally_owner_exports_total", "format", "csv", "outcome", outcome))
}

// newCounterView reads one counter of a registry (0 when absent) as a
// collector testutil can read.
func newCounterView(reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			c.Add(m.GetCounter().GetValue())
		}
	}
	return c
}

// A client that goes away mid-export cancels the read in progress: the
// scan stops, no later bucket is read, and the export counts as
// client_gone.
func TestExportClientGoneStopsTheScan(t *testing.T) {
	src := &scriptedSource{then: "block", cancelled: make(chan struct{}), bucketsHit: make(chan int, 8)}
	r := newExportRig(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	resp := r.get(ctx, t)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	for range 2 { // the header line and bucket 0's row
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if <-src.bucketsHit != 0 || <-src.bucketsHit != 1 {
		t.Fatal("buckets read out of order")
	}
	cancel() // the client goes away while bucket 1 is being read
	_ = resp.Body.Close()
	select {
	case <-src.cancelled:
	case <-time.After(30 * time.Second):
		t.Fatal("the read of bucket 1 was never cancelled after the client left")
	}
	r.srv.Close() // waits for the handler to return
	if len(src.bucketsHit) != 0 {
		t.Fatalf("bucket %d read after the client left", <-src.bucketsHit)
	}
	if r.outcome("client_gone") != 1 || r.outcome("finished") != 0 {
		t.Fatalf("client_gone %v finished %v", r.outcome("client_gone"), r.outcome("finished"))
	}
}

// A read that fails after the first bytes were sent cuts the connection:
// the client sees a broken body, never a complete file that is short.
func TestExportFailureMidStreamCutsTheBody(t *testing.T) {
	src := &scriptedSource{then: "fail", bucketsHit: make(chan int, 8)}
	r := newExportRig(t, src)
	resp := r.get(context.Background(), t)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || err == nil {
		t.Fatalf("status %d, body read error %v: a failed export ended like a whole one:\n%s", resp.StatusCode, err, body)
	}
	if !strings.HasPrefix(string(body), "poll_id,voter,") {
		t.Fatalf("body %q", body)
	}
	r.srv.Close()
	if r.outcome("failed") != 1 {
		t.Fatalf("failed %v", r.outcome("failed"))
	}
}

// A read that fails before anything was sent is answered in the error
// envelope, without the export's headers.
func TestExportFailureBeforeFirstByteIsAnError(t *testing.T) {
	src := &scriptedSource{first: true, bucketsHit: make(chan int, 8)}
	r := newExportRig(t, src)
	resp := r.get(context.Background(), t)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), `"code":"INTERNAL"`) ||
		resp.Header.Get("Content-Disposition") != "" {
		t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Content-Disposition"), body)
	}
}
