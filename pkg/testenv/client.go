package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Client talks to a Tally API the way a user would: JSON over HTTP.
type Client struct {
	T    testing.TB
	Base string
	HTTP *http.Client
}

// NewClient builds a client for base.
func NewClient(t testing.TB, base string) *Client {
	return &Client{T: t, Base: base, HTTP: &http.Client{}}
}

// Response is a decoded answer.
type Response struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

// Code returns the error envelope's code, or "".
func (r Response) Code() string {
	if e, ok := r.Body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

// Str returns a top-level string field.
func (r Response) Str(k string) string {
	s, _ := r.Body[k].(string)
	return s
}

// Do sends a request. body may be nil, a string (sent raw) or a value to
// encode as JSON. headers are alternating name, value.
func (c *Client) Do(method, path, token string, body any, headers ...string) Response {
	c.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			c.T.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		c.T.Fatalf("build request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := Response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// Must fails the test unless the response has the wanted status.
func (r Response) Must(t testing.TB, status int) Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	return r
}

// Account registers a fresh account and returns its token and id.
func (c *Client) Account() (token, userID string) {
	c.T.Helper()
	name := "u_" + strings.ReplaceAll(uuid.NewString()[:18], "-", "")
	reg := c.Do("POST", "/v1/auth/register", "", map[string]any{
		"email": name + "@example.test", "username": name, "password": "correct horse battery",
	}).Must(c.T, http.StatusCreated)
	login := c.Do("POST", "/v1/auth/login", "", map[string]any{"login": name, "password": "correct horse battery"}).
		Must(c.T, http.StatusOK)
	return login.Str("access_token"), reg.Str("user_id")
}

// Poll creates an active poll with the given option texts and settings,
// and returns its id and option ids in display order.
func (c *Client) Poll(token string, settings map[string]any, options ...string) (string, []string) {
	c.T.Helper()
	if len(options) == 0 {
		options = []string{"Go", "Rust", "Zig"}
	}
	opts := make([]map[string]any, len(options))
	for i, o := range options {
		opts[i] = map[string]any{"text": o, "display_order": i}
	}
	body := map[string]any{"title": "Test poll " + uuid.NewString()[:8], "options": opts}
	if settings != nil {
		body["settings"] = settings
	}
	r := c.Do("POST", "/v1/polls", token, body).Must(c.T, http.StatusCreated)
	ids := make([]string, 0, len(options))
	for _, o := range r.Body["options"].([]any) {
		ids = append(ids, o.(map[string]any)["option_id"].(string))
	}
	return r.Str("poll_id"), ids
}

// Results reads results in a mode and returns total and votes per option id.
func (c *Client) Results(token, pollID, mode string) (int64, map[string]int64) {
	c.T.Helper()
	r := c.Do("GET", fmt.Sprintf("/v1/polls/%s/results?tally=%s", pollID, mode), token, nil).Must(c.T, http.StatusOK)
	votes := map[string]int64{}
	for _, o := range r.Body["options"].([]any) {
		m := o.(map[string]any)
		votes[m["option_id"].(string)] = int64(m["votes"].(float64))
	}
	return int64(r.Body["total_votes"].(float64)), votes
}
