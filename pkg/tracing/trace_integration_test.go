//go:build integration

package tracing_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/tracing"
)

// One vote through the real router, Redis, Kafka, worker and Cassandra
// leaves one trace from the request to the produce, and the worker's
// apply span linked to that produce, with the vote's LWT and follow-ups
// under the apply.
func TestOneVoteTraceAcrossKafka(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := tracing.NewProvider(sdktrace.WithSyncer(exp))
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	cfg.Vote.LogSample = 1 // every vote_outcome line, to find the API's
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(zapcore.NewTee(testenv.Logger(t).Core(), core))
	a, err := app.New(context.Background(), cfg, log, app.WithTracing(tp))
	if err != nil {
		t.Fatal(err)
	}
	router, err := a.Router()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(router)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.RunWorker(ctx) }()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		a.Close()
		_ = tp.Shutdown(context.Background())
	})

	c := testenv.NewClient(t, srv.URL)
	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, map[string]any{"allow_anonymous": true})
	voter := c.Do("POST", "/v1/auth/anonymous", "", nil).Must(t, http.StatusOK).Str("access_token")
	c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]}).Must(t, http.StatusAccepted)

	var (
		api, send, apply sdktrace.ReadOnlySpan
		redis, lwt       []string
	)
	testenv.Eventually(t, 15*time.Second, func() error {
		api, send, apply, redis, lwt = nil, nil, nil, nil, nil
		spans := exp.GetSpans().Snapshots()
		for _, s := range spans {
			if s.Name() == "POST /v1/polls/:poll_id/votes" && s.SpanKind() == trace.SpanKindServer {
				api = s
			}
		}
		if api == nil {
			return fmt.Errorf("no API span among %d", len(spans))
		}
		for _, s := range spans {
			switch {
			case s.SpanContext().TraceID() != api.SpanContext().TraceID():
			case s.Name() == "send "+cfg.Kafka.VotesTopic:
				send = s
			case strings.Contains(s.InstrumentationScope().Name, "redisotel"):
				redis = append(redis, s.Name())
			}
		}
		if send == nil {
			return fmt.Errorf("no produce span in the API's trace")
		}
		for _, s := range spans {
			if s.Name() != "process "+cfg.Kafka.VotesTopic {
				continue
			}
			for _, l := range s.Links() {
				if l.SpanContext.SpanID() == send.SpanContext().SpanID() && l.SpanContext.TraceID() == send.SpanContext().TraceID() {
					apply = s
				}
			}
		}
		if apply == nil {
			return fmt.Errorf("no apply span linked to the produce")
		}
		// The apply span ends after its children; the LWT is already there.
		for _, s := range spans {
			if s.Parent().SpanID() == apply.SpanContext().SpanID() && s.SpanContext().TraceID() == apply.SpanContext().TraceID() {
				lwt = append(lwt, s.Name())
			}
		}
		return nil
	})
	if send.Parent().SpanID() == (trace.SpanID{}) || send.SpanKind() != trace.SpanKindProducer {
		t.Fatalf("produce span %q: parent %v kind %v", send.Name(), send.Parent(), send.SpanKind())
	}
	if rid := attr(api, "http.request_id"); rid == "" {
		t.Fatal("the API span does not name its X-Request-Id")
	}
	if len(redis) == 0 {
		t.Fatal("no Redis span in the API's trace")
	}
	if !containsPrefix(lwt, "lwt votes") {
		t.Fatalf("apply span's children %v: no LWT on votes", lwt)
	}
	if apply.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("apply span kind %v", apply.SpanKind())
	}
	// The API's vote_outcome line names the request's trace.
	var traced bool
	for _, e := range logs.FilterMessage("vote outcome").AllUntimed() {
		m := e.ContextMap()
		if m["stage"] == "api" && m["trace_id"] == api.SpanContext().TraceID().String() {
			traced = true
		}
	}
	if !traced {
		t.Fatalf("no api vote_outcome line with trace_id %s among %v", api.SpanContext().TraceID(), logs.FilterMessage("vote outcome").AllUntimed())
	}
	t.Logf("api %s; redis %v; apply children %v", api.SpanContext().TraceID(), redis, lwt)
}

func containsPrefix(names []string, prefix string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}
