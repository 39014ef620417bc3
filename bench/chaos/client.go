package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

// answer is one HTTP exchange; status 0 means no answer (transport error or
// client timeout).
type answer struct {
	status int
	body   map[string]any
	err    error
	// retryAfter is the Retry-After header's wait, 0 without one.
	retryAfter time.Duration
}

// code is the error envelope's code, or "".
func (a answer) code() string {
	if e, ok := a.body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (a answer) str(k string) string {
	s, _ := a.body[k].(string)
	return s
}

// client talks to the spawned API as users do: JSON over HTTP.
type client struct {
	base string
	http *http.Client
}

func newClient(addr string, timeout time.Duration, conns int) *client {
	return &client{base: "http://" + addr, http: &http.Client{Timeout: timeout, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second,
	}}}
}

func (c *client) do(ctx context.Context, method, path, token string, body any, key string) answer {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return answer{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, err: err}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		a.retryAfter = time.Duration(secs) * time.Second
	}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// retryable answers may succeed when asked again: no answer, 5xx, 429.
func retryable(status int) bool {
	return status == 0 || status >= 500 || status == http.StatusTooManyRequests
}

// must retries a setup call (accounts, polls) a few times while the API
// warms up, and wants the given status.
func (c *client) must(ctx context.Context, want int, method, path, token string, body any) (answer, error) {
	var a answer
	for attempt := 0; attempt < 8; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
		}
		a = c.do(ctx, method, path, token, body, "")
		if a.status == want {
			return a, nil
		}
		if !retryable(a.status) || ctx.Err() != nil {
			break
		}
	}
	return a, fmt.Errorf("%s %s: status %d %v %v", method, path, a.status, a.body, a.err)
}

// account registers the run's poll owner and logs in.
func (c *client) account(ctx context.Context, name string) (string, error) {
	if _, err := c.must(ctx, http.StatusCreated, "POST", "/v1/auth/register", "", map[string]any{
		"email": name + "@chaos.test", "username": name, "password": "chaos monkey " + name,
	}); err != nil {
		return "", err
	}
	a, err := c.must(ctx, http.StatusOK, "POST", "/v1/auth/login", "", map[string]any{"login": name, "password": "chaos monkey " + name})
	if err != nil {
		return "", err
	}
	return a.str("access_token"), nil
}

// pollInfo is a poll the harness created.
type pollInfo struct {
	id      id.ID
	options []id.ID
}

// createPoll creates an active poll that accepts anonymous voters.
func (c *client) createPoll(ctx context.Context, owner, title string, options int) (pollInfo, error) {
	opts := make([]map[string]any, options)
	for i := range opts {
		opts[i] = map[string]any{"text": fmt.Sprintf("option %c", 'A'+i), "display_order": i}
	}
	a, err := c.must(ctx, http.StatusCreated, "POST", "/v1/polls", owner, map[string]any{
		"title": title, "options": opts, "settings": map[string]any{"allow_anonymous": true},
	})
	if err != nil {
		return pollInfo{}, err
	}
	return parsePoll(a)
}

func parsePoll(a answer) (pollInfo, error) {
	var p pollInfo
	pollID, err := id.Parse(a.str("poll_id"))
	if err != nil {
		return p, fmt.Errorf("poll answer without poll_id: %v", a.body)
	}
	p.id = pollID
	list, _ := a.body["options"].([]any)
	for _, o := range list {
		m, _ := o.(map[string]any)
		s, _ := m["option_id"].(string)
		if oid, err := id.Parse(s); err == nil {
			p.options = append(p.options, oid)
		}
	}
	return p, nil
}

// voterToken is an anonymous voter identity from POST /v1/auth/anonymous.
type voterToken struct {
	id    id.ID
	token string
}

// subject reads the voter id from a token's claims (no verification: the
// harness only needs to know whom the server will see).
func subject(token string) (id.ID, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return id.ID{}, fmt.Errorf("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return id.ID{}, err
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return id.ID{}, err
	}
	return id.Parse(c.Sub)
}

// tokenPool keeps a buffer of fresh anonymous voters filled in the
// background, so the load has voters while the API is briefly down.
type tokenPool struct {
	ch   chan voterToken
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func newTokenPool(ctx context.Context, c *client, size, fillers int) *tokenPool {
	ctx, cancel := context.WithCancel(ctx)
	p := &tokenPool{ch: make(chan voterToken, size), stop: cancel}
	for range fillers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for ctx.Err() == nil {
				a := c.do(ctx, "POST", "/v1/auth/anonymous", "", nil, "")
				tok := a.str("access_token")
				id, err := subject(tok)
				if a.status != http.StatusOK || err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(200 * time.Millisecond):
					}
					continue
				}
				select {
				case p.ch <- voterToken{id: id, token: tok}:
				case <-ctx.Done():
				}
			}
		}()
	}
	return p
}

// fill waits until the buffer holds n voters (bounded).
func (p *tokenPool) fill(ctx context.Context, n int, timeout time.Duration) error {
	n = min(n, cap(p.ch))
	deadline := time.Now().Add(timeout)
	for len(p.ch) < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %d of %d anonymous voters after %s", len(p.ch), n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// get returns a voter without waiting.
func (p *tokenPool) get() (voterToken, bool) {
	select {
	case t := <-p.ch:
		return t, true
	default:
		return voterToken{}, false
	}
}

// wait returns a voter, waiting up to timeout.
func (p *tokenPool) wait(timeout time.Duration) (voterToken, bool) {
	select {
	case t := <-p.ch:
		return t, true
	case <-time.After(timeout):
		return voterToken{}, false
	}
}

func (p *tokenPool) close() {
	p.stop()
	p.wg.Wait()
}
