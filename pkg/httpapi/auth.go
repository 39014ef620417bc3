package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/ratelimit"
)

type registerRequest struct {
	Email    string `json:"email"`
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginRequest struct {
	Login    string `json:"login"`
	Password string `json:"password"`
}

type userResponse struct {
	UserID    string    `json:"user_id"`
	Email     string    `json:"email"`
	Username  string    `json:"username"`
	CreatedAt time.Time `json:"created_at"`
}

func toUser(u auth.User) userResponse {
	return userResponse{UserID: u.ID.String(), Email: u.Email, Username: u.Username, CreatedAt: u.CreatedAt}
}

func (h *handlers) register(c *gin.Context) {
	var req registerRequest
	if err := bind(c, &req); err != nil {
		abort(c, err)
		return
	}
	u, err := h.auth.Register(c.Request.Context(), auth.Registration(req))
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusCreated, toUser(u))
}

func (h *handlers) login(c *gin.Context) {
	var req loginRequest
	if err := bind(c, &req); err != nil {
		abort(c, err)
		return
	}
	if err := h.limitLogin(c, req.Login); err != nil {
		abort(c, err)
		return
	}
	tok, err := h.auth.Login(c.Request.Context(), req.Login, req.Password)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, tok)
}

func (h *handlers) anonymous(c *gin.Context) {
	tok, err := h.auth.Anonymous()
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, tok)
}

func (h *handlers) me(c *gin.Context) {
	p, _ := principal(c)
	u, err := h.auth.Me(c.Request.Context(), p)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, toUser(u))
}

// limitLogin counts a login attempt on its login name, whatever the client
// IP: brute force on one account from many addresses is slowed too.
func (h *handlers) limitLogin(c *gin.Context, login string) error {
	if strings.TrimSpace(login) == "" {
		return nil // refused by Login as VALIDATION_FAILED
	}
	var hits []ratelimit.Hit
	for _, r := range h.limiter.Rules(ratelimit.Login) {
		if r.Scope == ratelimit.ByLogin {
			hits = append(hits, ratelimit.Hit{Rule: r, Subject: ratelimit.LoginSubject(login)})
		}
	}
	if len(hits) == 0 {
		return nil
	}
	d, err := h.limiter.Allow(c.Request.Context(), ratelimit.Login, hits...)
	if err == nil {
		rateHeaders(c, d)
	}
	return err
}
