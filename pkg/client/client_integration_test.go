//go:build integration

package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/tally-vote/tally/pkg/client"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestClientJourney walks a user's journey through the generated client
// against the real stack (Cassandra, Redis, Kafka, the API and the vote
// worker in this process), so the document, the generator and the server
// have to agree on every request and answer it touches: accounts, a poll
// created idempotently, an async vote followed to completion, the caller's
// own vote, hidden and visible results, the close and the final tally, and
// the error envelope of each refusal on the way.
func TestClientJourney(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	a, srv := testenv.Server(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.RunWorker(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	c, err := client.NewClientWithResponses(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	owner := account(t, c, "owner")
	voter := account(t, c, "voter")
	other := account(t, c, "other")

	// Accounts: a taken email, a missing token.
	dup, err := c.RegisterWithResponse(ctx, client.RegisterRequest{Email: openapi_types.Email("owner@example.test"), Username: "someone_else", Password: "password-123"})
	check(t, "register a taken email", err, dup.StatusCode(), dup.Body, http.StatusConflict, "EMAIL_TAKEN")
	me, err := c.GetCurrentUserWithResponse(ctx)
	check(t, "me without a token", err, me.StatusCode(), me.Body, http.StatusUnauthorized, "UNAUTHENTICATED")
	if me.JSON401 == nil || me.JSON401.Error.Code != "UNAUTHENTICATED" {
		t.Errorf("me without a token: typed 401 = %+v", me.JSON401)
	}

	// A poll: refused when invalid, created once per Idempotency-Key.
	bad, err := c.CreatePollWithResponse(ctx, nil, client.PollCreate{Title: "one option", Options: []client.OptionInput{{Text: "only"}}}, owner)
	check(t, "create with one option", err, bad.StatusCode(), bad.Body, http.StatusBadRequest, "VALIDATION_FAILED")
	if bad.JSON400 == nil || bad.JSON400.Error.Field == nil || *bad.JSON400.Error.Field != "options" {
		t.Errorf("create with one option: field = %+v", bad.JSON400)
	}
	create := client.PollCreate{
		Title:    "Lunch?",
		Options:  []client.OptionInput{{Text: "Pizza"}, {Text: "Sushi"}},
		Settings: &client.SettingsInput{ShowResultsDuringVoting: ptr(false)},
	}
	key := &client.CreatePollParams{IdempotencyKey: ptr("lunch-1")}
	created, err := c.CreatePollWithResponse(ctx, key, create, owner)
	check(t, "create", err, created.StatusCode(), created.Body, http.StatusCreated, "")
	p := created.JSON201
	pollID := *p.PollId
	if p.Options == nil || len(*p.Options) != 2 || *p.Status != client.PollStatusActive {
		t.Fatalf("created poll: %s", created.Body)
	}
	pizza, sushi := *(*p.Options)[0].OptionId, *(*p.Options)[1].OptionId
	if h := created.Headers201; h == nil || h.Location == nil || !strings.HasSuffix(*h.Location, "/v1/polls/"+pollID.String()) {
		t.Errorf("create: Location = %+v", h)
	}
	replay, err := c.CreatePollWithResponse(ctx, key, create, owner)
	check(t, "create replayed", err, replay.StatusCode(), replay.Body, http.StatusCreated, "")
	if *replay.JSON201.PollId != pollID || replay.Headers201.IdempotentReplayed == nil {
		t.Errorf("replay: poll %s (want %s), headers %+v", replay.JSON201.PollId, pollID, replay.Headers201)
	}
	list, err := c.ListPollsWithResponse(ctx, &client.ListPollsParams{Limit: ptr(10)}, owner)
	check(t, "list", err, list.StatusCode(), list.Body, http.StatusOK, "")
	if list.JSON200.Polls == nil || len(*list.JSON200.Polls) != 1 || *(*list.JSON200.Polls)[0].PollId != pollID {
		t.Errorf("list: %s", list.Body)
	}
	got, err := c.GetPollWithResponse(ctx, pollID) // anyone with the link
	check(t, "get", err, got.StatusCode(), got.Body, http.StatusOK, "")
	if *got.JSON200.Title != "Lunch?" {
		t.Errorf("get: %s", got.Body)
	}

	// Results are hidden from a non-voter while the poll is active.
	hidden, err := c.GetResultsWithResponse(ctx, pollID, nil, voter)
	check(t, "results before voting", err, hidden.StatusCode(), hidden.Body, http.StatusForbidden, "RESULTS_HIDDEN")

	// An async vote, followed to completion.
	voteKey := &client.CastVoteParams{IdempotencyKey: ptr("vote-1")}
	cast, err := c.CastVoteWithResponse(ctx, pollID, voteKey, client.VoteRequest{OptionId: &pizza}, voter)
	check(t, "vote", err, cast.StatusCode(), cast.Body, http.StatusAccepted, "")
	requestID := *cast.JSON202.RequestId
	testenv.Eventually(t, 20*time.Second, func() error {
		st, err := c.GetVoteRequestStatusWithResponse(ctx, pollID, requestID, nil, voter)
		if err != nil || st.JSON200 == nil {
			return fmt.Errorf("request status: %v %s", err, st.Body)
		}
		if *st.JSON200.State != client.RequestStatusStateCompleted || st.JSON200.VoteId == nil {
			return fmt.Errorf("request status: %s", st.Body)
		}
		return nil
	})
	mine, err := c.GetMyVoteWithResponse(ctx, pollID, nil, voter)
	check(t, "own vote", err, mine.StatusCode(), mine.Body, http.StatusOK, "")
	if !*mine.JSON200.HasVoted || *mine.JSON200.OptionId != pizza {
		t.Errorf("own vote: %s", mine.Body)
	}
	retry, err := c.CastVoteWithResponse(ctx, pollID, voteKey, client.VoteRequest{OptionId: &pizza}, voter)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case retry.JSON200 != nil && *retry.JSON200.RequestId == requestID:
	case retry.JSON202 != nil && *retry.JSON202.RequestId == requestID:
	default:
		t.Errorf("retry with the same key: %d %s, want the original request %s", retry.StatusCode(), retry.Body, requestID)
	}

	// Refused votes, each with its code.
	again, err := c.CastVoteWithResponse(ctx, pollID, nil, client.VoteRequest{OptionId: &sushi}, voter)
	check(t, "second vote", err, again.StatusCode(), again.Body, http.StatusConflict, "ALREADY_VOTED")
	stranger := uuid.New()
	wrong, err := c.CastVoteWithResponse(ctx, pollID, nil, client.VoteRequest{OptionId: &stranger}, other)
	check(t, "another poll's option", err, wrong.StatusCode(), wrong.Body, http.StatusUnprocessableEntity, "INVALID_OPTION")
	both, err := c.CastVoteWithResponse(ctx, pollID, nil, client.VoteRequest{OptionId: &pizza, OptionIds: &[]uuid.UUID{sushi}}, other)
	check(t, "both option_id and option_ids", err, both.StatusCode(), both.Body, http.StatusBadRequest, "VALIDATION_FAILED")
	missing := uuid.New()
	nowhere, err := c.CastVoteWithResponse(ctx, missing, nil, client.VoteRequest{OptionId: &pizza}, other)
	check(t, "vote on no poll", err, nowhere.StatusCode(), nowhere.Body, http.StatusNotFound, "POLL_NOT_FOUND")
	if nowhere.JSON404 == nil || nowhere.JSON404.Error.PollId == nil || *nowhere.JSON404.Error.PollId != missing.String() {
		t.Errorf("vote on no poll: poll_id not echoed: %s", nowhere.Body)
	}
	anon, err := c.CreateAnonymousTokenWithResponse(ctx)
	check(t, "anonymous token", err, anon.StatusCode(), anon.Body, http.StatusOK, "")
	anonVote, err := c.CastVoteWithResponse(ctx, pollID, nil, client.VoteRequest{OptionId: &pizza}, client.Bearer(*anon.JSON200.AccessToken))
	check(t, "anonymous vote on a poll without anonymous votes", err, anonVote.StatusCode(), anonVote.Body, http.StatusForbidden, "FORBIDDEN")
	unknown, err := c.GetVoteRequestStatusWithResponse(ctx, pollID, uuid.New(), nil, voter)
	check(t, "a request id never issued", err, unknown.StatusCode(), unknown.Body, http.StatusNotFound, "REQUEST_NOT_FOUND")

	// The voter now sees the results.
	testenv.Eventually(t, 10*time.Second, func() error {
		return tallies(c, ctx, pollID, nil, voter, pizza)
	})

	// Only the owner closes; a closed poll takes no vote and shows its final tally to anyone.
	closed := client.PollPatch{Status: ptr(client.PollPatchStatusClosed)}
	notMine, err := c.UpdatePollWithResponse(ctx, pollID, closed, voter)
	check(t, "close by a voter", err, notMine.StatusCode(), notMine.Body, http.StatusForbidden, "NOT_POLL_OWNER")
	upd, err := c.UpdatePollWithResponse(ctx, pollID, closed, owner)
	check(t, "close", err, upd.StatusCode(), upd.Body, http.StatusOK, "")
	if *upd.JSON200.Status != client.PollStatusClosed || upd.JSON200.ClosedAt == nil {
		t.Errorf("close: %s", upd.Body)
	}
	late, err := c.CastVoteWithResponse(ctx, pollID, nil, client.VoteRequest{OptionId: &sushi}, other)
	check(t, "vote after the close", err, late.StatusCode(), late.Body, http.StatusConflict, "POLL_NOT_ACTIVE")
	final := &client.GetResultsParams{Tally: ptr(client.GetResultsParamsTallyFinal)}
	testenv.Eventually(t, 40*time.Second, func() error {
		return tallies(c, ctx, pollID, final, nil, pizza)
	})
}

// account registers name and logs in, returning the token as a request
// editor.
func account(t *testing.T, c *client.ClientWithResponses, name string) client.RequestEditorFn {
	t.Helper()
	ctx := context.Background()
	reg, err := c.RegisterWithResponse(ctx, client.RegisterRequest{Email: openapi_types.Email(name + "@example.test"), Username: name, Password: "password-123"})
	check(t, "register "+name, err, reg.StatusCode(), reg.Body, http.StatusCreated, "")
	login, err := c.LoginWithResponse(ctx, client.LoginRequest{Login: name, Password: "password-123"})
	check(t, "login "+name, err, login.StatusCode(), login.Body, http.StatusOK, "")
	bearer := client.Bearer(*login.JSON200.AccessToken)
	me, err := c.GetCurrentUserWithResponse(ctx, bearer)
	check(t, "me "+name, err, me.StatusCode(), me.Body, http.StatusOK, "")
	if *me.JSON200.Username != name || *me.JSON200.UserId != *reg.JSON201.UserId {
		t.Fatalf("me %s: %s", name, me.Body)
	}
	return bearer
}

// tallies checks the poll's results show one ballot, for option.
func tallies(c *client.ClientWithResponses, ctx context.Context, pollID uuid.UUID, params *client.GetResultsParams,
	as client.RequestEditorFn, option uuid.UUID) error {
	var editors []client.RequestEditorFn
	if as != nil {
		editors = append(editors, as)
	}
	r, err := c.GetResultsWithResponse(ctx, pollID, params, editors...)
	if err != nil || r.JSON200 == nil {
		return fmt.Errorf("results: %v %d %s", err, r.StatusCode(), r.Body)
	}
	if r.JSON200.TotalVotes == nil || *r.JSON200.TotalVotes != 1 {
		return fmt.Errorf("results: %s", r.Body)
	}
	if params != nil && params.Tally != nil && string(*r.JSON200.Tally) != string(*params.Tally) {
		return fmt.Errorf("results: tally %s, want %s", *r.JSON200.Tally, *params.Tally)
	}
	for _, o := range *r.JSON200.Options {
		want := 0
		if *o.OptionId == option {
			want = 1
		}
		if *o.Votes != want {
			return fmt.Errorf("results: %s", r.Body)
		}
	}
	return nil
}

// check fails the test unless the call succeeded with status and, when code
// is set, the error envelope carries it.
func check(t *testing.T, what string, err error, status int, body []byte, want int, code string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if status != want {
		t.Fatalf("%s: %d %s, want %d", what, status, body, want)
	}
	if code == "" {
		return
	}
	var env client.Error
	if err := json.Unmarshal(body, &env); err != nil || string(env.Error.Code) != code {
		t.Fatalf("%s: %s, want code %s", what, body, code)
	}
}

func ptr[T any](v T) *T { return &v }
