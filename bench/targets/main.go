// Command targets writes vote requests for an outside open-loop load tool.
//
// It creates one poll on a running Tally (as a fresh owner) and prints n
// POST /v1/polls/{id}/votes requests from n distinct voters, each with its
// own signed token and Idempotency-Key, as vegeta's JSON target lines:
//
//	go run ./bench/targets -n 20000 | vegeta attack -format json -rate 1000 -duration 20s | vegeta report
//
// The tokens are signed with the server's TALLY_JWT_SECRET (make run keeps
// it in .local/dev-jwt-secret), so no bench-only endpoint is needed.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/id"
)

type target struct {
	Method string              `json:"method"`
	URL    string              `json:"url"`
	Body   []byte              `json:"body"` // vegeta reads base64, which encoding/json writes for []byte
	Header map[string][]string `json:"header"`
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "base URL of the running Tally")
	secretFile := flag.String("secret-file", ".local/dev-jwt-secret", "file holding the server's TALLY_JWT_SECRET (ignored when the variable is set)")
	n := flag.Int("n", 20000, "number of votes, one per distinct voter")
	xff := flag.Bool("xff", true, "give each voter its own client address in X-Forwarded-For (198.18.0.0/15, the benchmarking range), as a load balancer would; the server must trust the tool's address (TALLY_TRUSTED_PROXIES=127.0.0.1)")
	flag.Parse()
	if err := run(*url, *secretFile, *n, *xff); err != nil {
		fmt.Fprintln(os.Stderr, "targets:", err)
		os.Exit(1)
	}
}

func run(base, secretFile string, n int, xff bool) error {
	secret := os.Getenv("TALLY_JWT_SECRET")
	if secret == "" {
		raw, err := os.ReadFile(secretFile)
		if err != nil {
			return fmt.Errorf("no TALLY_JWT_SECRET and %w", err)
		}
		secret = strings.TrimSpace(string(raw))
	}
	tokens := auth.NewTokens(secret, 6*time.Hour, time.Now)
	mint := func(u id.ID) (string, error) {
		t, err := tokens.Issue(auth.Principal{UserID: u})
		return t.AccessToken, err
	}
	owner, err := mint(id.New())
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{
		"title":   "outside check " + time.Now().UTC().Format(time.RFC3339),
		"options": []map[string]string{{"text": "Go"}, {"text": "Rust"}, {"text": "Zig"}, {"text": "C"}},
	})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/polls", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+owner)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var created struct {
		PollID  string `json:"poll_id"`
		Options []struct {
			OptionID string `json:"option_id"`
		} `json:"options"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("create poll: status %d, %v", resp.StatusCode, err)
	}
	fmt.Fprintf(os.Stderr, "targets: poll %s, %d voters\n", created.PollID, n)

	w := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(w)
	for i := range n {
		voter := id.New()
		tok, err := mint(voter)
		if err != nil {
			return err
		}
		opt := created.Options[i%len(created.Options)].OptionID
		h := map[string][]string{
			"Content-Type":    {"application/json"},
			"Authorization":   {"Bearer " + tok},
			"Idempotency-Key": {voter.String()},
		}
		if xff {
			h["X-Forwarded-For"] = []string{fmt.Sprintf("198.%d.%d.%d", 18+(i>>16)%2, (i>>8)&0xff, i&0xff)}
		}
		if err := enc.Encode(target{
			Method: http.MethodPost,
			URL:    base + "/v1/polls/" + created.PollID + "/votes",
			Body:   []byte(`{"option_id":"` + opt + `"}`),
			Header: h,
		}); err != nil {
			return err
		}
	}
	return w.Flush()
}
