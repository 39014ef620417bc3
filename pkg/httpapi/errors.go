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

// statusByCode is the one table from domain codes to HTTP status.
var statusByCode = map[string]int{
	"VALIDATION_FAILED":    http.StatusBadRequest,
	"UNAUTHENTICATED":      http.StatusUnauthorized,
	"FORBIDDEN":            http.StatusForbidden,
	"NOT_POLL_OWNER":       http.StatusForbidden,
	"RESULTS_HIDDEN":       http.StatusForbidden,
	"INVITE_REQUIRED":      http.StatusForbidden,
	"INVITE_INVALID":       http.StatusForbidden,
	"POW_REQUIRED":         http.StatusForbidden,
	"POW_INVALID":          http.StatusForbidden,
	"SUSPICIOUS_ACTIVITY":  http.StatusForbidden,
	"NOT_FOUND":            http.StatusNotFound,
	"POLL_NOT_FOUND":       http.StatusNotFound,
	"REQUEST_NOT_FOUND":    http.StatusNotFound,
	"METHOD_NOT_ALLOWED":   http.StatusMethodNotAllowed,
	"EMAIL_TAKEN":          http.StatusConflict,
	"USERNAME_TAKEN":       http.StatusConflict,
	"ALREADY_VOTED":        http.StatusConflict,
	"POLL_NOT_ACTIVE":      http.StatusConflict,
	"OPTIONS_FROZEN":       http.StatusConflict,
	"IDEMPOTENCY_CONFLICT": http.StatusConflict,
	"BODY_TOO_LARGE":       http.StatusRequestEntityTooLarge,
	"INVALID_OPTION":       http.StatusUnprocessableEntity,
	"RATE_LIMITED":         http.StatusTooManyRequests,
	"UNAVAILABLE":          http.StatusServiceUnavailable,
	"OVERLOADED":           http.StatusServiceUnavailable,
	"INTERNAL":             http.StatusInternalServerError,
}

// abort writes err as the SPEC's envelope. It is the only place that turns
// an error into an HTTP status; anything it does not recognise becomes a 500
// INTERNAL whose cause is logged and never shown.
func abort(c *gin.Context, err error) {
	body := errorBody{PollID: c.Param("poll_id")}
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
		body.Code, body.Message, body.Field = "VALIDATION_FAILED", inval.Error(), inval.Field
	case errors.As(err, &coded):
		body.Code, body.Message = coded.Code, coded.Message
	default:
		body.Code, body.Message = "INTERNAL", "internal error"
	}
	status, ok := statusByCode[body.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
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
	if body.Code == "RATE_LIMITED" && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", "60")
	}
	if body.Code == "OVERLOADED" && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", "1")
	}
	c.AbortWithStatusJSON(status, envelope{Error: body})
}
