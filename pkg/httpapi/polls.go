package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/poll"
)

type optionInput struct {
	Text         string `json:"text"`
	DisplayOrder *int   `json:"display_order"`
}

// settingsInput is poll.SettingsPatch as clients send it;
// show_results_during_voting is the deprecated alias of results_visibility.
type settingsInput struct {
	ShowResultsDuringVoting *bool                   `json:"show_results_during_voting"`
	ResultsVisibility       *poll.ResultsVisibility `json:"results_visibility"`
	AllowAnonymous          *bool                   `json:"allow_anonymous"`
	AllowMultipleOptions    *bool                   `json:"allow_multiple_options"`
	MaxVotesPerUser         *int                    `json:"max_votes_per_user"`
	BotPolicy               *poll.BotPolicy         `json:"bot_policy"`
	AnonymousAccess         *poll.AnonymousAccess   `json:"anonymous_access"`
	EmbedOrigins            *[]string               `json:"embed_origins"`
	MinVotesPerUser         *int                    `json:"min_votes_per_user"`
	Method                  *count.Method           `json:"method"`
	AllowVoteChange         *bool                   `json:"allow_vote_change"`
	MaxVoteChanges          *int                    `json:"max_vote_changes"`
}

type createPollRequest struct {
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Options     []optionInput  `json:"options"`
	StartTime   *timestamp     `json:"start_time"`
	EndTime     *timestamp     `json:"end_time"`
	Settings    *settingsInput `json:"settings"`
}

type patchPollRequest struct {
	Title       *string        `json:"title"`
	Description *string        `json:"description"`
	EndTime     *timestamp     `json:"end_time"`
	Settings    *settingsInput `json:"settings"`
	Options     []optionInput  `json:"options"`
	Status      *string        `json:"status"`
}

type optionResponse struct {
	OptionID     string `json:"option_id"`
	Text         string `json:"text"`
	DisplayOrder int    `json:"display_order"`
}

type pollResponse struct {
	PollID      string           `json:"poll_id"`
	CreatorID   string           `json:"creator_id"`
	Title       string           `json:"title"`
	Description string           `json:"description"`
	Status      poll.Status      `json:"status"`
	StartTime   time.Time        `json:"start_time"`
	EndTime     time.Time        `json:"end_time"`
	ClosedAt    *time.Time       `json:"closed_at,omitempty"`
	CreatedAt   time.Time        `json:"created_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
	ManageURL   string           `json:"manage_url"`
	Settings    settingsResponse `json:"settings"`
	Options     []optionResponse `json:"options"`
}

// settingsResponse is a poll's settings as clients read them, with
// show_results_during_voting derived from results_visibility (true only
// for always) for clients that know only the boolean.
type settingsResponse struct {
	ResultsVisibility       poll.ResultsVisibility `json:"results_visibility"`
	ShowResultsDuringVoting bool                   `json:"show_results_during_voting"`
	AllowAnonymous          bool                   `json:"allow_anonymous"`
	AllowMultipleOptions    bool                   `json:"allow_multiple_options"`
	MaxVotesPerUser         int                    `json:"max_votes_per_user"`
	BotPolicy               poll.BotPolicy         `json:"bot_policy"`
	AnonymousAccess         poll.AnonymousAccess   `json:"anonymous_access"`
	// EmbedOrigins is always a list, empty when no page may frame the
	// widget.
	EmbedOrigins    []string     `json:"embed_origins"`
	MinVotesPerUser int          `json:"min_votes_per_user"`
	Method          count.Method `json:"method"`
	AllowVoteChange bool         `json:"allow_vote_change"`
	// MaxVoteChanges is the limit in force (the default when unset).
	MaxVoteChanges int `json:"max_vote_changes"`
}

func toSettings(s poll.Settings) settingsResponse {
	v := s.Visibility()
	r := settingsResponse{
		ResultsVisibility: v, ShowResultsDuringVoting: v.ShownDuringVoting(),
		AllowAnonymous: s.AllowAnonymous, AllowMultipleOptions: s.AllowMultipleOptions,
		MaxVotesPerUser: s.MaxVotesPerUser, BotPolicy: s.BotPolicy, AnonymousAccess: s.AnonymousAccess,
		EmbedOrigins:    s.EmbedOrigins,
		MinVotesPerUser: max(s.MinVotesPerUser, 1), Method: s.CountingMethod(),
		AllowVoteChange: s.AllowVoteChange, MaxVoteChanges: s.VoteChanges(),
	}
	if r.EmbedOrigins == nil {
		r.EmbedOrigins = []string{}
	}
	return r
}

type pollListResponse struct {
	Polls      []pollResponse `json:"polls"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

func (h *handlers) toPoll(p *poll.Poll) pollResponse {
	r := pollResponse{
		PollID:      p.ID.String(),
		CreatorID:   p.CreatorID.String(),
		Title:       p.Title,
		Description: p.Description,
		Status:      p.StatusAt(h.now()),
		StartTime:   p.StartTime,
		EndTime:     p.EndTime,
		CreatedAt:   p.CreatedAt,
		UpdatedAt:   p.UpdatedAt,
		ManageURL:   h.publicURL + "/v1/polls/" + p.ID.String(),
		Settings:    toSettings(p.Settings),
		Options:     make([]optionResponse, len(p.Options)),
	}
	if !p.ClosedAt.IsZero() {
		t := p.ClosedAt
		r.ClosedAt = &t
	}
	for i, o := range p.Options {
		r.Options[i] = optionResponse{OptionID: o.ID.String(), Text: o.Text, DisplayOrder: o.DisplayOrder}
	}
	return r
}

// createSettings is a new poll's settings: the defaults, overlaid with
// what the creator sent.
func createSettings(in *settingsInput) (poll.Settings, error) {
	if in == nil {
		return poll.DefaultSettings, nil
	}
	sp := poll.SettingsPatch(*in)
	if err := sp.Validate(); err != nil {
		return poll.Settings{}, err
	}
	return sp.Apply(poll.DefaultSettings), nil
}

func toOptionInputs(in []optionInput) []poll.OptionInput {
	if in == nil {
		return nil
	}
	out := make([]poll.OptionInput, len(in))
	for i, o := range in {
		out[i] = poll.OptionInput{Text: o.Text, DisplayOrder: o.DisplayOrder}
	}
	return out
}

// accountOnly refuses anonymous voter tokens.
func accountOnly(c *gin.Context) {
	if p, ok := principal(c); ok && p.Anonymous {
		abort(c, auth.ErrAnonymousCaller)
	}
}

func (h *handlers) createPoll(c *gin.Context) {
	key, err := idempotencyKey(c)
	if err != nil {
		abort(c, err)
		return
	}
	var req createPollRequest
	if err := bind(c, &req); err != nil {
		abort(c, err)
		return
	}
	if req.Options == nil {
		abort(c, apperr.Invalid("options", "is required"))
		return
	}
	settings, err := createSettings(req.Settings)
	if err != nil {
		abort(c, err)
		return
	}
	caller, _ := principal(c)
	p, created, err := h.polls.Create(c.Request.Context(), caller.UserID, poll.CreateInput{
		Title:       req.Title,
		Description: req.Description,
		Options:     toOptionInputs(req.Options),
		StartTime:   req.StartTime.timePtr(),
		EndTime:     req.EndTime.timePtr(),
		Settings:    settings,
	}, key)
	if err != nil {
		abort(c, err)
		return
	}
	status := http.StatusCreated
	if !created {
		c.Header("Idempotent-Replayed", "true")
	}
	c.Header("Location", "/v1/polls/"+p.ID.String())
	c.JSON(status, h.toPoll(p))
}

func (h *handlers) getPoll(c *gin.Context) {
	id, err := pathUUID(c, "poll_id")
	if err != nil {
		abort(c, err)
		return
	}
	p, err := h.polls.Get(c.Request.Context(), id)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, h.toPoll(p))
}

func (h *handlers) listPolls(c *gin.Context) {
	limit := 20
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			abort(c, apperr.Invalid("limit", "must be 1 to 100"))
			return
		}
		limit = n
	}
	caller, _ := principal(c)
	polls, next, err := h.polls.List(c.Request.Context(), caller.UserID, c.Query("cursor"), limit)
	if err != nil {
		abort(c, err)
		return
	}
	resp := pollListResponse{Polls: make([]pollResponse, len(polls))}
	for i, p := range polls {
		resp.Polls[i] = h.toPoll(p)
	}
	resp.NextCursor = next
	c.JSON(http.StatusOK, resp)
}

func (h *handlers) patchPoll(c *gin.Context) {
	id, err := pathUUID(c, "poll_id")
	if err != nil {
		abort(c, err)
		return
	}
	var req patchPollRequest
	if err := bind(c, &req); err != nil {
		abort(c, err)
		return
	}
	pt := poll.Patch{
		Title:       req.Title,
		Description: req.Description,
		EndTime:     req.EndTime.timePtr(),
		Options:     toOptionInputs(req.Options),
	}
	if req.Status != nil {
		if *req.Status != string(poll.Closed) {
			abort(c, apperr.Invalid("status", `can only be set to "closed"`))
			return
		}
		pt.Close = true
	}
	caller, _ := principal(c)
	if req.Settings != nil {
		sp := poll.SettingsPatch(*req.Settings)
		pt.Settings = &sp
	}
	p, err := h.polls.Update(c.Request.Context(), caller.UserID, id, pt)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, h.toPoll(p))
}
