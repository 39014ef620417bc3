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
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/clientip"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ratelimit"
)

var errBodyTooLarge = apperr.New(apperr.CodeBodyTooLarge, "request body exceeds 1 MiB")

// MaxJSONDepth bounds how deeply a request body may nest objects and
// arrays. Tally's deepest body (a poll's options) nests 3 levels; the
// margin is for the extra metadata clients may send.
const MaxJSONDepth = 32

// bind decodes a JSON body into dst, turning every failure into a 4xx that
// names what was wrong. Unknown fields are ignored so clients can send extra
// metadata; duplicate keys and nesting past MaxJSONDepth are refused.
func bind(c *gin.Context, dst any) error {
	dec := json.NewDecoder(c.Request.Body)
	var raw json.RawMessage
	err := dec.Decode(&raw)
	if err == nil {
		// Nothing but white space may follow the value: dec.More alone
		// let a stray '}' or ']' through (fuzzing found "{}}" accepted).
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return apperr.Invalid("body", "must hold a single JSON object")
		}
		// null, arrays and scalars are not a request: a null would
		// otherwise decode into an empty one.
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
			return apperr.Invalid("body", "must be a JSON object")
		}
		if err := checkShape(raw); err != nil {
			return err
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

// checkShape refuses what encoding/json would accept silently: a key that
// appears twice in one object, also in another letter case (encoding/json
// matches field names case-insensitively and keeps the last, so a proxy that
// reads the first would judge another request than Tally serves), and
// nesting deeper than MaxJSONDepth. raw is already known to be valid JSON.
func checkShape(raw []byte) error {
	type frame struct {
		names    map[string]bool // nil for an array
		wantName bool
	}
	var stack []frame
	dec := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return apperr.Invalid("body", "is not valid JSON")
		}
		kind := tok.Kind()
		if n := len(stack); n > 0 && stack[n-1].names != nil && kind != '}' {
			top := &stack[n-1]
			if top.wantName {
				name := foldName(tok.String())
				if top.names[name] {
					return apperr.Invalid("body", "has a duplicate key %q", trimTo(tok.String(), 64))
				}
				top.names[name] = true
				top.wantName = false
				continue
			}
			top.wantName = true // this token begins the member's value
		}
		switch kind {
		case '{':
			stack = append(stack, frame{names: map[string]bool{}, wantName: true})
		case '[':
			stack = append(stack, frame{})
		case '}', ']':
			stack = stack[:len(stack)-1]
		}
		if len(stack) > MaxJSONDepth {
			return apperr.Invalid("body", "nests deeper than %d levels", MaxJSONDepth)
		}
	}
}

// foldName maps a key to the same string as every key encoding/json would
// match it with: it compares names with Unicode simple case folding, like
// strings.EqualFold.
func foldName(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

func trimTo(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
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
	if h == "" && (c.FullPath() == "/v1/polls/:poll_id/live" || c.FullPath() == "/v1/polls/:poll_id/results/stream") {
		// Browsers cannot set headers on a WebSocket handshake, nor on
		// an EventSource.
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

// limitHits are the subjects of a request under rules: its client address
// (an IPv6 client's /64, see clientip.Key), its account (skipped for an anonymous request). Per-login-name rules are
// counted by the login handler, which reads the name from the body.
func limitHits(c *gin.Context, rules []ratelimit.Rule) []ratelimit.Hit {
	hits := make([]ratelimit.Hit, 0, len(rules))
	for _, r := range rules {
		switch r.Scope {
		case ratelimit.ByAccount:
			if p, ok := principal(c); ok {
				hits = append(hits, ratelimit.Hit{Rule: r, Subject: p.UserID.String()})
			}
		case ratelimit.ByLogin:
		default:
			hits = append(hits, ratelimit.Hit{Rule: r, Subject: clientip.Key(c.ClientIP())})
		}
	}
	return hits
}

// limit counts the request under its class's rules (per IP, per account)
// and refuses it with 429 (or 503 for a fail-closed class while Redis is
// down). The RateLimit-* headers tell the most restrictive rule's state.
func limit(l *ratelimit.Limiter, class string) gin.HandlerFunc {
	rules := l.Rules(class)
	return func(c *gin.Context) {
		hits := limitHits(c, rules)
		if len(hits) == 0 {
			return
		}
		d, err := l.Allow(c.Request.Context(), class, hits...)
		if err != nil {
			abort(c, err)
			return
		}
		rateHeaders(c, d)
	}
}

// rateHeaders sets the IETF draft RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset (seconds until the full burst is back) from d, unless an
// earlier rule of the request left fewer remaining.
func rateHeaders(c *gin.Context, d ratelimit.Decision) {
	if d.Limit == 0 {
		return
	}
	h := c.Writer.Header()
	if prev, err := strconv.Atoi(h.Get("RateLimit-Remaining")); err == nil && prev <= d.Remaining {
		return
	}
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(d.Remaining, 0)))
	h.Set("RateLimit-Reset", strconv.Itoa(ratelimit.Seconds(d.Reset)))
}

// maxIdempotencyKey bounds an Idempotency-Key in characters, as the
// OpenAPI document states it.
const maxIdempotencyKey = 255

// idempotencyKey reads the Idempotency-Key header. The key is stored in
// text columns, which refuse bytes that are not UTF-8, and a JSON message
// would replace them (so the worker would see another key than the API):
// such a key is refused here, before anything is written.
func idempotencyKey(c *gin.Context) (string, error) {
	k := strings.TrimSpace(c.GetHeader("Idempotency-Key"))
	if !utf8.ValidString(k) {
		return "", apperr.Invalid("Idempotency-Key", "must be valid UTF-8")
	}
	if utf8.RuneCountInString(k) > maxIdempotencyKey {
		return "", apperr.Invalid("Idempotency-Key", "must be at most %d characters", maxIdempotencyKey)
	}
	return k, nil
}
