package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/ratelimit"
)

// envelope is the SPEC's error body.
type envelope struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	PollID  string `json:"poll_id,omitempty"`
}

// statusByCode is the one table from the SPEC's codes to HTTP status; a
// unit test holds it to cover every code.
var statusByCode = map[apperr.Code]int{
	apperr.CodeValidationFailed:    http.StatusBadRequest,
	apperr.CodeUnauthenticated:     http.StatusUnauthorized,
	apperr.CodeForbidden:           http.StatusForbidden,
	apperr.CodeNotPollOwner:        http.StatusForbidden,
	apperr.CodeResultsHidden:       http.StatusForbidden,
	apperr.CodeInviteRequired:      http.StatusForbidden,
	apperr.CodeInviteInvalid:       http.StatusForbidden,
	apperr.CodePoWRequired:         http.StatusForbidden,
	apperr.CodePoWInvalid:          http.StatusForbidden,
	apperr.CodeSuspiciousActivity:  http.StatusForbidden,
	apperr.CodeNotFound:            http.StatusNotFound,
	apperr.CodePollNotFound:        http.StatusNotFound,
	apperr.CodeRequestNotFound:     http.StatusNotFound,
	apperr.CodeMethodNotAllowed:    http.StatusMethodNotAllowed,
	apperr.CodeEmailTaken:          http.StatusConflict,
	apperr.CodeUsernameTaken:       http.StatusConflict,
	apperr.CodeAlreadyVoted:        http.StatusConflict,
	apperr.CodePollNotActive:       http.StatusConflict,
	apperr.CodeOptionsFrozen:       http.StatusConflict,
	apperr.CodeIdempotencyConflict: http.StatusConflict,
	apperr.CodeBodyTooLarge:        http.StatusRequestEntityTooLarge,
	apperr.CodeInvalidOption:       http.StatusUnprocessableEntity,
	apperr.CodeRateLimited:         http.StatusTooManyRequests,
	apperr.CodeUnavailable:         http.StatusServiceUnavailable,
	apperr.CodeOverloaded:          http.StatusServiceUnavailable,
	apperr.CodeVoteChangeLimit:     http.StatusConflict,
	apperr.CodeVoteChangeConflict:  http.StatusConflict,
	apperr.CodeInternal:            http.StatusInternalServerError,
}

// abort writes err as the SPEC's envelope. It is the only place that turns
// an error into an HTTP status; anything it does not recognise becomes a 500
// INTERNAL whose cause is logged and never shown.
func abort(c *gin.Context, err error) {
	body := errorBody{PollID: c.Param("poll_id")}
	code := apperr.CodeInternal
	var (
		coded *apperr.Error
		inval *apperr.ValidationError
	)
	switch {
	case c.Request.Context().Err() != nil && errors.Is(err, c.Request.Context().Err()):
		// The client went away; nobody reads this answer. Not a server fault.
		loggerFrom(c).Debug("client went away", zap.Error(err))
		c.AbortWithStatus(499)
		return
	case errors.As(err, &inval):
		code, body.Message, body.Field = apperr.CodeValidationFailed, inval.Error(), inval.Field
	case errors.As(err, &coded):
		code, body.Message = coded.Code, coded.Message
	default:
		body.Message = "internal error"
	}
	body.Code = code.String()
	status, ok := statusByCode[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	// A shed request (503 OVERLOADED) is the admission bound doing its job
	// and is counted (tally_admission_refused_total, tally_http_requests_total);
	// a line for each would cost most at the moment the box has least to spare.
	if status >= 500 && code != apperr.CodeOverloaded {
		loggerFrom(c).Error("request failed", zap.String("code", body.Code), zap.Error(err))
	}
	var limited *ratelimit.Limited
	if errors.As(err, &limited) {
		d := limited.Decision
		c.Header("Retry-After", strconv.Itoa(max(ratelimit.Seconds(d.RetryAfter), 1)))
		c.Header("RateLimit-Limit", strconv.Itoa(d.Limit))
		c.Header("RateLimit-Remaining", "0")
		c.Header("RateLimit-Reset", strconv.Itoa(max(ratelimit.Seconds(d.Reset), 1)))
	}
	if code == apperr.CodeRateLimited && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", "60")
	}
	if (code == apperr.CodeOverloaded || code == apperr.CodeUnavailable) && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", "1")
	}
	c.AbortWithStatusJSON(status, envelope{Error: body})
}
