package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/tally-vote/tally/pkg/anonaccess"
	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/vote"
)

// The fuzz rig is the real router (NewRouter) over the real auth, poll and
// vote services. Their stores stand at the boundary of the system of record
// and refuse every write with apperr.Unavailable after recording what
// reached them; reads return two fixed polls. A 503 from the rig therefore
// means "this request got past every decoder and validator", and the
// recorded value is exactly what would have been written. Nothing here
// emulates Cassandra: the integration tests do the writing.

var errBoundary = errors.New("fuzz rig: the store refuses writes")

func refused(op string) error { return apperr.Unavailable(op, errBoundary) }

// recorder holds what reached the stores during one request.
type recorder struct {
	mu      sync.Mutex
	user    *auth.User
	login   *string
	poll    *poll.Poll
	change  *poll.Change
	options []poll.Option
	key     *string
	ballot  *vote.Ballot
	page    []byte
	listed  bool
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.user, r.login, r.poll, r.change, r.options, r.key, r.ballot, r.page, r.listed = nil, nil, nil, nil, nil, nil, nil, nil, false
}

func (r *recorder) set(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

type userBoundary struct{ rec *recorder }

func (s userBoundary) CreateUser(_ context.Context, u auth.User) error {
	s.rec.set(func() { s.rec.user = &u })
	return refused("create user")
}
func (s userBoundary) UserByID(context.Context, id.ID) (auth.User, error) {
	return auth.User{}, refused("read user")
}
func (s userBoundary) UserIDByEmail(_ context.Context, email string) (id.ID, error) {
	s.rec.set(func() { s.rec.login = &email })
	return id.ID{}, refused("read email")
}
func (s userBoundary) UserIDByUsername(_ context.Context, name string) (id.ID, error) {
	s.rec.set(func() { s.rec.login = &name })
	return id.ID{}, refused("read username")
}

type pollBoundary struct {
	rec   *recorder
	polls map[id.ID]poll.Poll
}

func (s pollBoundary) Create(_ context.Context, p *poll.Poll) error {
	cp := *p
	s.rec.set(func() { s.rec.poll = &cp })
	return refused("create poll")
}
func (s pollBoundary) Get(_ context.Context, id id.ID) (*poll.Poll, error) {
	p, ok := s.polls[id]
	if !ok {
		return nil, poll.ErrNotFound
	}
	p.Options = append([]poll.Option(nil), p.Options...)
	return &p, nil
}
func (s pollBoundary) ListByCreator(_ context.Context, _ id.ID, page []byte, _ int) ([]id.ID, []byte, error) {
	s.rec.set(func() { s.rec.page, s.rec.listed = append([]byte(nil), page...), true })
	return nil, nil, refused("list polls")
}
func (s pollBoundary) Update(_ context.Context, _ id.ID, ch poll.Change) error {
	s.rec.set(func() { s.rec.change = &ch })
	return refused("update poll")
}
func (s pollBoundary) ReplaceOptions(_ context.Context, _ *poll.Poll, opts []poll.Option, _ time.Time) error {
	s.rec.set(func() { s.rec.options = opts })
	return refused("replace options")
}
func (s pollBoundary) FreezeOptions(context.Context, id.ID, int) (bool, error) { return true, nil }
func (s pollBoundary) ClaimCreateKey(_ context.Context, _ id.ID, key string, c poll.CreateClaim) (poll.CreateClaim, error) {
	s.rec.set(func() { s.rec.key = &key })
	return c, nil
}

type noVotes struct{}

func (noVotes) HasVotes(context.Context, *poll.Poll) (bool, error) {
	return false, refused("has votes")
}

type voteBoundary struct{ rec *recorder }

func (s voteBoundary) Insert(_ context.Context, b *vote.Ballot) (bool, *vote.Ballot, error) {
	cp := *b
	s.rec.set(func() { s.rec.ballot = &cp })
	return false, nil, refused("insert vote")
}
func (s voteBoundary) Get(context.Context, id.ID, id.ID) (*vote.Ballot, error) {
	return nil, refused("read vote")
}
func (s voteBoundary) Index(context.Context, id.ID, int, []*vote.Ballot) error {
	return refused("index")
}
func (s voteBoundary) Indexed(context.Context, *vote.Ballot, int) (bool, error) {
	return false, refused("indexed")
}
func (s voteBoundary) Change(context.Context, *vote.Ballot, int, id.ID, vote.ChangeOutcome) (bool, *vote.Ballot, error) {
	return false, nil, refused("change vote")
}
func (s voteBoundary) Entry(context.Context, id.ID, int, id.ID) (vote.IndexEntry, bool, error) {
	return vote.IndexEntry{}, false, refused("read index entry")
}
func (s voteBoundary) MoveEntry(context.Context, id.ID, int, id.ID, vote.IndexEntry, int, bool) (bool, error) {
	return false, refused("move index entry")
}
func (s voteBoundary) Move(context.Context, *poll.Poll, int, *vote.IndexEntry, *vote.IndexEntry) error {
	return refused("move counters")
}

const rigSecret = "fuzz-secret-0123456789abcdef0123456789"

// rigNow is the rig's clock: fixed, so tokens and poll status never move.
var rigNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type rig struct {
	h        http.Handler
	rec      *recorder
	doc      *openapi3.T
	tokens   *auth.Tokens
	cursors  poll.Cursors
	owner    id.ID
	voter    id.ID
	ownerTok string
	voterTok string
	// active takes votes (three options, up to two per ballot, results
	// hidden while voting); draft is the owner's poll that PATCH targets.
	active, draft poll.Poll
}

func newRig(tb testing.TB) *rig {
	tb.Helper()
	now := func() time.Time { return rigNow }
	r := &rig{rec: &recorder{}, tokens: auth.NewTokens(rigSecret, time.Hour, now), cursors: poll.NewCursors([]byte(rigSecret)),
		owner: id.New(), voter: id.New()}
	doc, err := openapi3.NewLoader().LoadFromData(openAPIYAML)
	if err != nil {
		tb.Fatalf("load openapi.yaml: %v", err)
	}
	r.doc = doc
	mk := func(title string, start time.Time, s poll.Settings, texts ...string) poll.Poll {
		p := poll.Poll{ID: id.New(), CreatorID: r.owner, Title: title, StartTime: start,
			EndTime: rigNow.Add(24 * time.Hour), CreatedAt: start, UpdatedAt: start, Settings: s, CounterShards: 4, IndexBuckets: 4}
		for i, t := range texts {
			p.Options = append(p.Options, poll.Option{ID: id.New(), Text: t, DisplayOrder: i})
		}
		return p
	}
	r.active = mk("active", rigNow.Add(-time.Hour), poll.Settings{AllowMultipleOptions: true, MaxVotesPerUser: 2}, "a", "b", "c")
	r.draft = mk("draft", rigNow.Add(time.Hour), poll.DefaultSettings, "x", "y")
	reg := prometheus.NewRegistry()
	log := zap.NewNop()
	polls := poll.NewService(poll.Config{CounterShards: 4, IndexBuckets: 4, CacheTTL: time.Hour},
		poll.Deps{Store: pollBoundary{rec: r.rec, polls: map[id.ID]poll.Poll{r.active.ID: r.active, r.draft.ID: r.draft}},
			Votes: noVotes{}, Cursors: r.cursors, Log: log, Now: now})
	h, err := NewRouter(Deps{
		Log: log, Registry: reg, Now: now, PublicURL: "http://tally.test",
		Auth:  auth.NewService(auth.Config{TokenTTL: time.Hour, BcryptCost: bcrypt.MinCost}, userBoundary{r.rec}, r.tokens, log, now),
		Polls: polls,
		Votes: vote.NewService(vote.Config{Mode: "sync"}, vote.Deps{Store: voteBoundary{r.rec}, Polls: polls,
			Changes: voteBoundary{r.rec}, Moves: voteBoundary{r.rec},
			// No anonymous-access service: invite and proof-of-work polls
			// refuse anonymous voters (503), as an unwired process does.
			Voters: (*anonaccess.Service)(nil), Log: log, Now: now}, reg),
		Limiter: ratelimit.New(ratelimit.Config{}, nil, log, now, reg), // every limit 0: never reaches Redis
		// The tally service only for its visibility rule, which every
		// results read in the rig stops at (the vote store answers 503):
		// no store, cache or fence behind it.
		Tally: tally.NewService(tally.Config{}, nil, nil, nil, nil, log, now, reg),
	})
	if err != nil {
		tb.Fatal(err)
	}
	r.h = h
	tok := func(id id.ID) string {
		t, err := r.tokens.Issue(auth.Principal{UserID: id})
		if err != nil {
			tb.Fatal(err)
		}
		return t.AccessToken
	}
	r.ownerTok, r.voterTok = tok(r.owner), tok(r.voter)
	return r
}

// answer is one response of the rig.
type answer struct {
	status int
	body   []byte
	err    errorBody
}

func (r *rig) do(method, target, token string, body []byte, header ...string) answer {
	r.rec.reset()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req := httptest.NewRequest(method, target, rd)
	req.RemoteAddr = "127.0.0.1:1234"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	a := answer{status: w.Code, body: w.Body.Bytes()}
	if a.status >= 400 {
		var env envelope
		_ = json.Unmarshal(a.body, &env)
		a.err = env.Error
	}
	return a
}

// checkEnvelope asserts what every refusal must be: the SPEC envelope with a
// code whose status is the one the mapper assigns, a message, never a 500,
// and one of the statuses allowed for the route.
func checkEnvelope(t *testing.T, a answer, allowed ...int) {
	t.Helper()
	ok := false
	for _, s := range allowed {
		ok = ok || a.status == s
	}
	if !ok {
		t.Fatalf("status %d not in %v: %.300s", a.status, allowed, a.body)
	}
	if a.status < 400 {
		return
	}
	if a.err.Code == "" || a.err.Message == "" {
		t.Fatalf("status %d without the error envelope: %.300s", a.status, a.body)
	}
	code, known := apperr.ParseCode(a.err.Code)
	if !known {
		t.Fatalf("status %d with code %q, which is not one of the SPEC's", a.status, a.err.Code)
	}
	if want := statusByCode[code]; want != a.status {
		t.Fatalf("code %s answered %d, the mapper says %d", a.err.Code, a.status, want)
	}
	if a.err.Code == "VALIDATION_FAILED" && a.err.Field == "" {
		t.Fatalf("VALIDATION_FAILED names no field: %.300s", a.body)
	}
}

// documentAccepts reports whether body is valid under the named request
// schema of openapi.yaml. Keys are matched case-insensitively first, as the
// document says the server does.
func (r *rig) documentAccepts(name string, body []byte) bool {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	v = canonKeys(v)
	uuid := openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(canonicalUUID))
	return r.doc.Components.Schemas[name].Value.VisitJSON(v, openapi3.EnableFormatValidation(), uuid) == nil
}

// requestFields are the property names of every request schema.
var requestFields = []string{"title", "description", "options", "text", "display_order", "start_time", "end_time",
	"settings", "show_results_during_voting", "results_visibility", "allow_anonymous", "allow_multiple_options", "max_votes_per_user",
	"status", "option_id", "option_ids", "email", "username", "password", "login"}

func canonKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			for _, f := range requestFields {
				if strings.EqualFold(k, f) {
					k = f
				}
			}
			out[k] = canonKeys(e)
		}
		return out
	case []any:
		for i := range x {
			x[i] = canonKeys(x[i])
		}
	}
	return v
}

// shapeOK is an independent statement of the body shape the server
// accepts (see checkShape): no key twice in an object under
// strings.EqualFold, at most MaxJSONDepth levels. It reads the body with
// encoding/json's tokenizer, not the server's.
func shapeOK(body []byte) bool {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	type frame struct {
		obj   bool
		keys  []string
		isKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if top != nil && top.obj {
			top.isKey = !top.isKey
			if top.isKey {
				k := tok.(string)
				for _, seen := range top.keys {
					if strings.EqualFold(seen, k) {
						return false
					}
				}
				top.keys = append(top.keys, k)
				continue
			}
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, &frame{obj: d == '{'})
			if len(stack) > MaxJSONDepth {
				return false
			}
		}
	}
}
