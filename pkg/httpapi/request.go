package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ratelimit"
)

var errBodyTooLarge = apperr.New("BODY_TOO_LARGE", "request body exceeds 1 MiB")

// bind decodes a JSON body into dst, turning every failure into a 4xx that
// names what was wrong. Unknown fields are ignored so clients can send extra
// metadata.
func bind(c *gin.Context, dst any) error {
	dec := json.NewDecoder(c.Request.Body)
	var raw json.RawMessage
	err := dec.Decode(&raw)
	if err == nil {
		if dec.More() {
			return apperr.Invalid("body", "must hold a single JSON object")
		}
		// null, arrays and scalars are not a request: a null would
		// otherwise decode into an empty one.
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
			return apperr.Invalid("body", "must be a JSON object")
		}
		if err = json.Unmarshal(raw, dst); err == nil {
			return nil
		}
	}
	var (
		maxErr  *http.MaxBytesError
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
	)
	switch {
	case errors.As(err, &maxErr):
		return errBodyTooLarge
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return apperr.Invalid(field, "must be of type %s", typeErr.Type.String())
	case errors.As(err, &synErr), errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.Invalid("body", "is not valid JSON")
	case errors.Is(err, io.EOF):
		return apperr.Invalid("body", "is empty")
	}
	var timeErr *time.ParseError
	if errors.As(err, &timeErr) {
		return apperr.Invalid("body", "times must be RFC 3339, e.g. 2026-04-05T10:00:00Z")
	}
	return apperr.Invalid("body", "could not be decoded: %s", trimErr(err))
}

func trimErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

func pathUUID(c *gin.Context, name string) (id.ID, error) {
	v, err := id.Parse(c.Param(name))
	if err != nil {
		return v, apperr.Invalid(name, "must be a UUID")
	}
	return v, nil
}

const principalKey = "tally.principal"

// authenticate resolves the bearer token. With required, a missing or bad
// token is 401; otherwise a missing token leaves the request anonymous but a
// bad one is still 401, so clients learn their token expired.
func authenticate(svc *auth.Service, required bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		raw := bearer(c)
		if raw == "" {
			if required {
				abort(c, auth.ErrInvalidToken)
			}
			return
		}
		p, err := svc.Verify(raw)
		if err != nil {
			abort(c, auth.ErrInvalidToken)
			return
		}
		c.Set(principalKey, p)
	}
}

func bearer(c *gin.Context) string {
	h := c.GetHeader("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if h == "" && c.FullPath() == "/v1/polls/:poll_id/live" {
		// Browsers cannot set headers on a WebSocket handshake.
		return c.Query("access_token")
	}
	return ""
}

func principal(c *gin.Context) (auth.Principal, bool) {
	v, ok := c.Get(principalKey)
	if !ok {
		return auth.Principal{}, false
	}
	return v.(auth.Principal), true
}

// limit applies a rate-limit rule to the caller (account or IP).
func limit(l *ratelimit.Limiter, rule func() ratelimit.Rule) gin.HandlerFunc {
	return func(c *gin.Context) {
		r := rule()
		subject := c.ClientIP()
		if !r.PerIP {
			p, ok := principal(c)
			if !ok {
				return
			}
			subject = p.UserID.String()
		}
		if ok, retry := l.Allow(c.Request.Context(), r, subject); !ok {
			c.Header("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
			abort(c, apperr.ErrRateLimited)
		}
	}
}

func idempotencyKey(c *gin.Context) (string, error) {
	k := strings.TrimSpace(c.GetHeader("Idempotency-Key"))
	if len(k) > 255 {
		return "", apperr.Invalid("Idempotency-Key", "must be at most 255 characters")
	}
	return k, nil
}
