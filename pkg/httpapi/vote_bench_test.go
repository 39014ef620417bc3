package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/crypto/bcrypt"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/admit"
	"github.com/tally-vote/tally/pkg/anonaccess"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax/votes"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/vote"
)

// The accept rig is the async vote route as `tally serve` wires it (the
// real router, middleware, auth, poll view, vote service, rate-limit and
// bot-rule bookkeeping, and the Kafka queue that encodes the message),
// with the two network round trips replaced by in-memory fakes: the Redis
// admission script admits every vote, and the Kafka produce is
// acknowledged at once. What it measures is therefore the API's own work
// per accepted vote, without the Redis and Kafka clients' allocations.

// admitAll is the admission script answering "admitted" with every limit
// allowed and no bot rule tripped.
type admitAll struct{}

func (admitAll) Flag(_ context.Context, a *vote.Admit) error  { return admitAll{}.Check(nil, a) }
func (admitAll) Check(_ context.Context, a *vote.Admit) error { return settleAllowed(a) }

func settleAllowed(a *vote.Admit) error {
	if err := a.Limits.Settle(ratelimit.Verdict{Allowed: true, Rule: 1, Remaining: 9, Reset: 6 * time.Second}); err != nil {
		return err
	}
	flags, err := a.Bots.Settle(nil, false)
	if flags != nil {
		a.Ballot.Flags = flags
	}
	return err
}

// keepFlags is the voter's flag that nothing ever holds.
type keepFlags struct{}

func (keepFlags) MarkQueued(context.Context, *poll.Poll, *vote.Ballot) (vote.Mark, error) {
	return vote.MarkQueued, nil
}
func (keepFlags) MarkRecorded(*poll.Poll, *vote.Ballot)                       {}
func (keepFlags) Release(context.Context, id.ID, id.ID, id.ID) error          { return nil }
func (keepFlags) Withdraw(context.Context, id.ID, id.ID, id.ID) error         { return nil }
func (keepFlags) Forget(context.Context, id.ID, id.ID, id.ID) error           { return nil }
func (keepFlags) Accepted(context.Context, id.ID, id.ID, id.ID) (bool, error) { return true, nil }

// ackAll is a Kafka writer that acknowledges every message at once and
// keeps the last one.
type ackAll struct{ last []byte }

func (p *ackAll) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	p.last = msgs[len(msgs)-1].Value
	return nil
}

// defaults reads a package's Config with nothing in the environment: the
// defaults a laptop runs with.
func defaults[T any](tb testing.TB) T {
	tb.Helper()
	cfg, err := env.ParseAsWithOptions[T](env.Options{Environment: map[string]string{}})
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

type acceptRig struct {
	h        http.Handler
	producer *ackAll
	target   string
	token    string
	active   poll.Poll
}

func newAcceptRig(tb testing.TB) *acceptRig {
	tb.Helper()
	now := func() time.Time { return rigNow }
	// An info-level JSON logger, as `tally serve` builds one, writing
	// nowhere: debug lines cost only their level check.
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel))
	reg := prometheus.NewRegistry()
	owner, voter := id.New(), id.New()
	p := poll.Poll{ID: id.New(), CreatorID: owner, Title: "bench", StartTime: rigNow.Add(-time.Hour), EndTime: rigNow.Add(24 * time.Hour),
		CreatedAt: rigNow.Add(-time.Hour), UpdatedAt: rigNow.Add(-time.Hour), Settings: poll.DefaultSettings, CounterShards: 4, IndexBuckets: 4}
	for i, t := range []string{"a", "b", "c"} {
		p.Options = append(p.Options, poll.Option{ID: id.New(), Text: t, DisplayOrder: i})
	}
	rec := &recorder{}
	polls := poll.NewService(poll.Config{CounterShards: 4, IndexBuckets: 4, CacheTTL: time.Hour},
		poll.Deps{Store: pollBoundary{rec: rec, polls: map[id.ID]poll.Poll{p.ID: p}}, Votes: noVotes{},
			Cursors: poll.NewCursors([]byte(rigSecret)), Log: log, Now: now})
	tokens := auth.NewTokens(rigSecret, time.Hour, now)
	limiter := ratelimit.New(defaults[ratelimit.Config](tb), nil, log, now, reg)
	producer := &ackAll{}
	queue := votes.New(defaults[votes.Config](tb), producer, log.Named("queue"), now, reg)
	anon := anonaccess.New(defaults[anonaccess.Config](tb), []byte(rigSecret), anonaccess.Deps{Log: log, Now: now, Metrics: reg})
	svc := vote.NewService(defaults[vote.Config](tb), vote.Deps{Store: voteBoundary{rec}, Polls: polls, Voters: anon,
		Queue: queue, Flags: keepFlags{}, Admission: admitAll{}, Limits: limiter, Log: log.Named("vote"), Now: now,
		RequestKey: []byte(rigSecret), Bots: abuse.NewDetector(defaults[abuse.Config](tb), []byte(rigSecret), now, reg)}, reg)
	h, err := NewRouter(Deps{
		Log: log.Named("http"), Registry: reg, Now: now, PublicURL: "http://tally.test",
		Auth:    auth.NewService(auth.Config{TokenTTL: time.Hour, BcryptCost: bcrypt.MinCost}, userBoundary{rec}, tokens, log, now),
		Polls:   polls,
		Votes:   svc,
		Limiter: limiter,
		Gate:    admit.New(defaults[admit.Config](tb), now, reg),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := tokens.Issue(auth.Principal{UserID: voter, AccountCreated: rigNow.Add(-48 * time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	return &acceptRig{h: h, producer: producer, target: "/v1/polls/" + p.ID.String() + "/votes", token: tok.AccessToken, active: p}
}

// benchWriter is a ResponseWriter reused across requests, so the
// benchmark counts the server's allocations rather than a recorder's.
type benchWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *benchWriter) Header() http.Header { return w.header }
func (w *benchWriter) WriteHeader(s int)   { w.status = s }
func (w *benchWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

func (w *benchWriter) reset() {
	clear(w.header)
	w.status = 0
	w.body.Reset()
}

// BenchmarkAcceptVote is one accepted async vote (202) through the router:
// body read, token check, admission slot, poll view, voting rules,
// admission (fake), message encoding and produce (fake), answer.
//
//	go test -run '^$' -bench BenchmarkAcceptVote -benchmem -benchtime 2s -count 5 ./pkg/httpapi
func BenchmarkAcceptVote(b *testing.B) {
	r := newAcceptRig(b)
	body := []byte(`{"option_id":"` + r.active.Options[1].ID.String() + `"}`)
	req := httptest.NewRequest(http.MethodPost, r.target, nil)
	req.RemoteAddr = "203.0.113.7:41000"
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tally-bench/1.0")
	req.ContentLength = int64(len(body))
	rd := bytes.NewReader(nil)
	rc := io.NopCloser(rd)
	w := &benchWriter{header: http.Header{}}
	serve := func() {
		w.reset()
		rd.Reset(body)
		req.Body = rc
		r.h.ServeHTTP(w, req)
	}
	serve()
	if w.status != http.StatusAccepted || len(r.producer.last) == 0 {
		b.Fatalf("vote not accepted: %d %s", w.status, w.body.Bytes())
	}
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		serve()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	// How often the collector ran and what it cost, per 10,000 votes: the
	// figures GOGC trades against memory.
	b.ReportMetric(float64(after.NumGC-before.NumGC)*1e4/float64(b.N), "gc/10k-votes")
	b.ReportMetric(float64(after.PauseTotalNs-before.PauseTotalNs)/float64(b.N), "gc-pause-ns/op")
	if w.status != http.StatusAccepted {
		b.Fatalf("vote not accepted: %d %s", w.status, w.body.Bytes())
	}
}

// BenchmarkVerifyToken is the bearer token check alone (part of the
// above), to tell whether the JWT parse matters.
func BenchmarkVerifyToken(b *testing.B) {
	now := func() time.Time { return rigNow }
	tokens := auth.NewTokens(rigSecret, time.Hour, now)
	tok, err := tokens.Issue(auth.Principal{UserID: id.New(), AccountCreated: rigNow.Add(-48 * time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tokens.Verify(tok.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}
