package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/auth"
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
