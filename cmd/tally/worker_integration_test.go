//go:build integration

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/testenv"
)

// startWorker runs what `tally worker` runs, on the real stack, with its
// operator listener on a free port; stop cancels it as SIGTERM would and
// returns runWorker's error.
func startWorker(t *testing.T, cfg config.Config) (ops *testenv.Client, stop func() error) {
	t.Helper()
	a, err := app.New(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("build app: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runWorker(ctx, a, a.OpsServer(), ln) }()
	var stopErr error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(time.Minute):
				t.Fatal("the worker did not stop within a minute of its context")
			}
		}
		return stopErr
	}
	t.Cleanup(func() {
		_ = stop()
		a.Close()
	})
	return testenv.NewClient(t, "http://"+ln.Addr().String()), stop
}

// TestWorkerOperatorListener: `tally worker`'s listener answers the probes,
// serves the registry the worker records into (a vote it drained is counted
// there), serves no API route, records no HTTP series of its own, and closes
// when the worker stops. /readyz answers 503 while a dependency is
// unreachable, naming it to the operator.
func TestWorkerOperatorListener(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	cfg.HTTP.OperatorToken = "operator-token-for-the-worker-test"
	operator := []string{"Authorization", "Bearer " + cfg.HTTP.OperatorToken}

	t.Run("ready", func(t *testing.T) {
		// The API is another process's (its own App and registry): votes
		// reach this worker through Kafka only.
		_, api := testenv.Server(t, cfg)
		c := testenv.NewClient(t, api.URL)
		ops, stop := startWorker(t, cfg)

		if r := ops.Do("GET", "/healthz", "", nil); r.Status != http.StatusOK || r.Str("status") != "ok" {
			t.Fatalf("/healthz: %d %s", r.Status, r.Raw)
		}
		r := ops.Do("GET", "/readyz", "", nil, operator...)
		if r.Status != http.StatusOK || r.Str("status") != "ready" {
			t.Fatalf("/readyz: %d %s", r.Status, r.Raw)
		}
		checks, _ := r.Body["checks"].(map[string]any)
		for _, dep := range []string{"cassandra", "redis", "kafka"} {
			if st, _ := checks[dep].(map[string]any); st["status"] != "up" {
				t.Errorf("/readyz %s: %v (%s)", dep, checks[dep], r.Raw)
			}
		}
		owner, _ := c.Account()
		pollID, opts := c.Poll(owner, nil, "yes", "no")
		voter, _ := c.Account()
		c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]}).Must(t, http.StatusAccepted)
		// The worker's series: its configured concurrency (a dedicated
		// worker never yields), the vote it drained, the lag it watches.
		testenv.Eventually(t, time.Minute, func() error {
			r := ops.Do("GET", "/metrics", "", nil)
			if r.Status != http.StatusOK {
				return fmt.Errorf("/metrics: %d %s", r.Status, r.Raw)
			}
			for _, want := range []string{
				fmt.Sprintf("\ntally_worker_concurrency %d\n", cfg.Worker.Concurrency),
				"\ntally_worker_messages_total{result=\"recorded\"} 1\n",
				"\ntally_worker_consumer_lag{partition=\"",
			} {
				if !strings.Contains(string(r.Raw), want) {
					return fmt.Errorf("/metrics has no %q yet", strings.TrimSpace(want))
				}
			}
			return nil
		})
		m := string(ops.Do("GET", "/metrics", "", nil).Raw)
		if strings.Contains(m, "tally_http_requests_total") {
			t.Error("the operator listener records tally_http_* series; a worker's probes would enter the API's SLIs")
		}

		// Operators only: no API route answers here.
		for _, p := range []string{"/v1/polls/" + pollID, "/v1/polls/" + pollID + "/results", "/v1/openapi.json"} {
			if r := ops.Do("GET", p, voter, nil); r.Status != http.StatusNotFound || r.Code() != "NOT_FOUND" {
				t.Errorf("GET %s on the worker: %d %s, want 404 NOT_FOUND", p, r.Status, r.Raw)
			}
		}
		if r := ops.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[1]}); r.Status != http.StatusNotFound {
			t.Errorf("POST a vote on the worker: %d %s, want 404", r.Status, r.Raw)
		}

		base := ops.Base
		if err := stop(); err != nil {
			t.Fatalf("worker stopped with %v", err)
		}
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			t.Errorf("the listener still answers after the worker stopped: %d", resp.StatusCode)
		}
	})

	t.Run("redis unreachable", func(t *testing.T) {
		// A port nothing listens on: bound, then released.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		bad := cfg
		bad.Redis.Addr = closed
		ops, _ := startWorker(t, bad)

		if r := ops.Do("GET", "/healthz", "", nil); r.Status != http.StatusOK {
			t.Errorf("/healthz with Redis unreachable: %d %s; the process is alive", r.Status, r.Raw)
		}
		if r := ops.Do("GET", "/readyz", "", nil); r.Status != http.StatusServiceUnavailable || r.Str("status") != "not_ready" ||
			r.Body["checks"] != nil {
			t.Errorf("/readyz without the operator token: %d %s, want 503 not_ready and no detail", r.Status, r.Raw)
		}
		r := ops.Do("GET", "/readyz", "", nil, operator...)
		checks, _ := r.Body["checks"].(map[string]any)
		state := func(dep string) any { st, _ := checks[dep].(map[string]any); return st["status"] }
		if r.Status != http.StatusServiceUnavailable || state("redis") != "down" || state("cassandra") != "up" ||
			state("kafka") != "up" {
			t.Errorf("/readyz with Redis at %s: %d %s, want 503 with redis down and the others up", closed, r.Status, r.Raw)
		}
	})
}
