package httpapi

import (
	"encoding/base64"
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/vote"
	"github.com/tally-vote/tally/pkg/wirejson"
)

type voteRequest struct {
	OptionID  *id.ID  `json:"option_id"`
	OptionIDs []id.ID `json:"option_ids"`
	// Scores is a score poll's ballot: each option scored once.
	Scores []scoreEntry `json:"scores"`
}

// scoreEntry is one option's score on a score ballot. Score is read as a
// number and checked here, so 2.5 or "3" get a refusal that says why.
type scoreEntry struct {
	OptionID *id.ID   `json:"option_id"`
	Score    *float64 `json:"score"`
}

func (r voteRequest) options() ([]id.ID, error) {
	switch {
	case r.OptionID != nil && r.OptionIDs != nil:
		return nil, apperr.Invalid("option_ids", "send option_id or option_ids, not both")
	case r.OptionID != nil:
		return []id.ID{*r.OptionID}, nil
	}
	return r.OptionIDs, nil
}

// scores splits a score ballot into its options and their scores (nil, nil
// without one): each entry names an option once, with an integer score
// from 0 to count.MaxScore, else 400 VALIDATION_FAILED on scores. Whether
// the poll takes scores, and how many, vote.CheckScores and vote.Choose
// judge.
func (r voteRequest) scores() ([]id.ID, []int, error) {
	if r.Scores == nil {
		return nil, nil, nil
	}
	if r.OptionID != nil || r.OptionIDs != nil {
		return nil, nil, apperr.Invalid("scores", "send scores or option_id(s), not both")
	}
	if len(r.Scores) == 0 {
		return nil, nil, apperr.Invalid("scores", "score at least one option")
	}
	ids, scores := make([]id.ID, len(r.Scores)), make([]int, len(r.Scores))
	seen := make(map[id.ID]bool, len(r.Scores))
	for i, e := range r.Scores {
		switch {
		case e.OptionID == nil:
			return nil, nil, apperr.Invalid("scores", "entry %d has no option_id", i)
		case seen[*e.OptionID]:
			return nil, nil, apperr.Invalid("scores", "option %s is scored twice", *e.OptionID)
		case e.Score == nil:
			return nil, nil, apperr.Invalid("scores", "entry %d has no score", i)
		case *e.Score != math.Trunc(*e.Score) || *e.Score < 0 || *e.Score > count.MaxScore:
			return nil, nil, apperr.Invalid("scores", "each score is an integer from 0 to %d", count.MaxScore)
		}
		seen[*e.OptionID] = true
		ids[i], scores[i] = *e.OptionID, int(*e.Score)
	}
	return ids, scores, nil
}

type recordedResponse struct {
	Status     string    `json:"status"`
	VoteID     string    `json:"vote_id"`
	RequestID  string    `json:"request_id"`
	PollID     string    `json:"poll_id"`
	OptionID   string    `json:"option_id,omitempty"`
	OptionIDs  []id.ID   `json:"option_ids"`
	Scores     []int     `json:"scores,omitempty"`
	RecordedAt time.Time `json:"recorded_at"`
	// Receipt is the ballot's signed receipt (receipts on, and a ballot
	// recorded with a commitment).
	Receipt *receipt.Receipt `json:"receipt,omitempty"`
	// Salt opens the receipt's commitment: only in the answer of the
	// attempt that wrote the ballot, never in a replay's.
	Salt string `json:"salt,omitempty"`
}

type myVoteResponse struct {
	HasVoted  bool       `json:"has_voted"`
	OptionID  string     `json:"option_id,omitempty"`
	OptionIDs []id.ID    `json:"option_ids,omitempty"`
	Scores    []int      `json:"scores,omitempty"`
	VotedAt   *time.Time `json:"voted_at,omitempty"`
	// Version counts the ballot's changes (absent: never changed);
	// Revoked is a revoked ballot (has_voted false), which the voter may
	// cast again while the poll is open.
	Version   int        `json:"version,omitempty"`
	Revoked   bool       `json:"revoked,omitempty"`
	ChangedAt *time.Time `json:"changed_at,omitempty"`
}

func toRecorded(b *vote.Ballot) recordedResponse {
	r := recordedResponse{Status: "recorded", VoteID: b.VoteID.String(), RequestID: b.RequestID.String(), PollID: b.PollID.String(),
		OptionIDs: b.OptionIDs, Scores: b.Scores, RecordedAt: b.VotedAt}
	if len(b.OptionIDs) == 1 {
		r.OptionID = b.OptionIDs[0].String()
	}
	return r
}

// ballotInput is what a vote (POST …/votes) and a ballot change (PUT and
// DELETE …/votes/me) read from their request.
type ballotInput struct {
	PollID id.ID
	// Key is the Idempotency-Key header ("" without one).
	Key string
	// OptionIDs and Scores are the body's choice: a score ballot's
	// options and their scores, else the chosen options and nil scores.
	// Both nil when the body is not read.
	OptionIDs []id.ID
	Scores    []int
}

// readBallotInput reads the poll_id path parameter, the Idempotency-Key
// header and, with body, the body's choice (bindVote, then
// voteRequest.options and voteRequest.scores), in that order, and returns
// the first refusal.
func readBallotInput(c *gin.Context, body bool) (ballotInput, error) {
	var in ballotInput
	var err error
	if in.PollID, err = pathUUID(c, "poll_id"); err != nil {
		return in, err
	}
	if in.Key, err = idempotencyKey(c); err != nil {
		return in, err
	}
	if !body {
		return in, nil
	}
	var req voteRequest
	if err := bindVote(c, &req); err != nil {
		return in, err
	}
	if in.OptionIDs, err = req.options(); err != nil {
		return in, err
	}
	scored, scores, err := req.scores()
	if err != nil {
		return in, err
	}
	if scores != nil {
		in.OptionIDs, in.Scores = scored, scores
	}
	return in, nil
}

func (h *handlers) castVote(c *gin.Context) {
	in, err := readBallotInput(c, true)
	if err != nil {
		abort(c, err)
		return
	}
	caller, _ := principal(c)
	out, err := h.votes.Cast(c.Request.Context(), vote.Request{PollID: in.PollID, VoterID: caller.UserID,
		Anonymous: caller.Anonymous, Credentials: c.Request.Header, OptionIDs: in.OptionIDs, Scores: in.Scores, IdempotencyKey: in.Key, IP: c.ClientIP(), UserAgent: c.Request.UserAgent(),
		Device: c.GetHeader("X-Device-Fingerprint"), AccountCreated: caller.AccountCreated,
		// The route's limits are checked in the vote's admission round trip.
		Limits: limitHits(c, h.voteRules)})
	if err != nil {
		abort(c, err)
		return
	}
	// The route's limits were checked in the vote's round trip: tell
	// their state on success too.
	if out.Limit.Allowed {
		rateHeaders(c, out.Limit)
	}
	if out.Recorded != nil {
		// Sync mode, Kafka unavailable, or a retry of a recorded vote
		// (a replay: its receipt, no salt).
		r := toRecorded(out.Recorded)
		r.Receipt = out.Signed
		if out.Salt != nil {
			r.Salt = receipt.EncodeSalt(out.Salt)
		}
		c.JSON(http.StatusOK, r)
		return
	}
	writeJSON(c, http.StatusAccepted, appendAccepted(make([]byte, 0, acceptedSize), in.PollID, out.RequestID, out.VoteID, out.Salt))
}

// acceptedResponse is the 202 answer's shape; appendAccepted writes it.
type acceptedResponse struct {
	Status    string `json:"status"`
	PollID    string `json:"poll_id"`
	RequestID string `json:"request_id"`
	// VoteID and Salt come with a first attempt's 202 when receipts are
	// on: the salt opens the commitment the request status's receipt
	// will carry once the ballot is recorded. A retry gets neither.
	VoteID  string `json:"vote_id,omitempty"`
	Salt    string `json:"salt,omitempty"`
	Message string `json:"message"`
}

// acceptedSize is the length of the longest 202 answer (vote id and salt).
const acceptedSize = len(`{"status":"accepted","poll_id":"","request_id":"","vote_id":"","salt":"","message":"vote is being processed"}`) +
	3*36 + 43

// appendAccepted appends the 202 answer: the bytes encoding/json writes
// for acceptedResponse{"accepted", pollID, requestID, voteID, salt, "vote
// is being processed"}, vote id and salt omitted when salt is nil, without
// reflection (it is written once per accepted vote).
func appendAccepted(dst []byte, pollID, requestID, voteID id.ID, salt []byte) []byte {
	dst = append(dst, `{"status":"accepted","poll_id":`...)
	dst = wirejson.ID(dst, pollID)
	dst = append(dst, `,"request_id":`...)
	dst = wirejson.ID(dst, requestID)
	if salt != nil {
		dst = append(dst, `,"vote_id":`...)
		dst = wirejson.ID(dst, voteID)
		dst = append(dst, `,"salt":"`...)
		dst = base64.RawURLEncoding.AppendEncode(dst, salt)
		dst = append(dst, '"')
	}
	return append(dst, `,"message":"vote is being processed"}`...)
}

// jsonContentType is the Content-Type c.JSON sets, shared read-only.
var jsonContentType = []string{"application/json; charset=utf-8"}

// writeJSON answers status with body, JSON already encoded, as c.JSON
// would have written it: its Content-Type unless one is set, the status,
// the bytes; a failed write is recorded on c and aborts, as c.JSON does.
func writeJSON(c *gin.Context, status int, body []byte) {
	c.Status(status)
	if h := c.Writer.Header(); len(h["Content-Type"]) == 0 {
		h["Content-Type"] = jsonContentType
	}
	if _, err := c.Writer.Write(body); err != nil {
		_ = c.Error(err)
		c.Abort()
	}
}

type requestStatusResponse struct {
	RequestID string     `json:"request_id"`
	State     string     `json:"state"`
	VoteID    string     `json:"vote_id,omitempty"`
	Error     *errorBody `json:"error,omitempty"`
	// Receipt is a completed request's receipt; never a salt.
	Receipt *receipt.Receipt `json:"receipt,omitempty"`
}

func (h *handlers) requestStatus(c *gin.Context) {
	pollID, err := pathUUID(c, "poll_id")
	if err != nil {
		abort(c, err)
		return
	}
	rid, err := pathUUID(c, "request_id")
	if err != nil {
		abort(c, err)
		return
	}
	p, err := h.polls.Cached(c.Request.Context(), pollID)
	if err != nil {
		abort(c, err) // POLL_NOT_FOUND for a poll that does not exist
		return
	}
	voter, err := h.reader(c, p)
	if err != nil {
		abort(c, err)
		return
	}
	st, err := h.statuses.Get(c.Request.Context(), pollID, voter, rid)
	if err != nil {
		abort(c, err)
		return
	}
	r := requestStatusResponse{RequestID: rid.String(), State: st.State}
	switch st.State {
	case vote.Completed:
		r.VoteID, r.Receipt = st.VoteID.String(), st.Receipt
	case vote.Failed:
		r.Error = &errorBody{Code: st.Failure.Code, Message: st.Failure.Message}
	}
	c.JSON(http.StatusOK, r)
}

func (h *handlers) myVote(c *gin.Context) {
	p := h.pathPoll(c)
	if p == nil {
		return
	}
	voter, err := h.reader(c, p)
	if err != nil {
		abort(c, err)
		return
	}
	b, err := h.votes.Mine(c.Request.Context(), p.ID, voter)
	if errors.Is(err, vote.ErrNoVote) {
		c.JSON(http.StatusOK, myVoteResponse{HasVoted: false})
		return
	}
	if err != nil {
		abort(c, err)
		return
	}
	r := myVoteResponse{HasVoted: true, OptionIDs: b.OptionIDs, Scores: b.Scores, VotedAt: &b.VotedAt, Version: b.Version}
	if !b.ChangedAt.IsZero() {
		r.ChangedAt = &b.ChangedAt
	}
	if b.Revoked {
		// The choice of a revoked ballot is no longer the voter's vote.
		c.JSON(http.StatusOK, myVoteResponse{HasVoted: false, Revoked: true, Version: b.Version, ChangedAt: r.ChangedAt})
		return
	}
	if len(b.OptionIDs) == 1 {
		r.OptionID = b.OptionIDs[0].String()
	}
	c.JSON(http.StatusOK, r)
}
