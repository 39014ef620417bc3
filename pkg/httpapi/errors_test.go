package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/vote"
)

func TestAbortMapsErrors(t *testing.T) {
	gin.SetMode(gin.TestMode)
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"validation", apperr.Invalid("title", "too long"), 400, "VALIDATION_FAILED"},
		{"wrapped sentinel", fmt.Errorf("cast: %w", vote.ErrAlreadyVoted), 409, "ALREADY_VOTED"},
		{"not found", poll.ErrNotFound, 404, "POLL_NOT_FOUND"},
		{"invalid option", vote.ErrInvalidOption, 422, "INVALID_OPTION"},
		{"unavailable", apperr.Unavailable("insert vote", errors.New("timeout")), 503, "UNAVAILABLE"},
		{"rate limited", apperr.ErrRateLimited, 429, "RATE_LIMITED"},
		{"unknown", errors.New("secret internals"), 500, "INTERNAL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
			abort(c, tc.err)
			var env envelope
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || env.Error.Code != tc.code {
				t.Fatalf("got %d %s, want %d %s", w.Code, env.Error.Code, tc.status, tc.code)
			}
			if tc.code == "INTERNAL" && env.Error.Message != "internal error" {
				t.Fatalf("internals leaked: %q", env.Error.Message)
			}
			if tc.code == "RATE_LIMITED" && w.Header().Get("Retry-After") == "" {
				t.Fatal("no Retry-After")
			}
		})
	}
}
