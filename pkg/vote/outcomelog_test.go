package vote

import (
	"errors"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
)

func TestOutcomeLogSampling(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	l := NewOutcomeLog(zap.New(core), 10)
	const n = 2000
	kept := 0
	for range n {
		rid := id.New()
		a, b := l.Sampled(rid), l.Sampled(rid)
		if a != b {
			t.Fatal("sampling is not deterministic per request id")
		}
		if a {
			kept++
		}
		l.Write(OutcomeLine{Stage: "api", PollID: id.New(), RequestID: rid, Outcome: "accepted"})
	}
	if kept < n/20 || kept > n/5 {
		t.Errorf("kept %d of %d at 1 in 10", kept, n)
	}
	if logs.Len() != kept {
		t.Errorf("wrote %d lines, sampled %d", logs.Len(), kept)
	}
	// Failures are always written, whatever the sample.
	before := logs.Len()
	for range 20 {
		l.Write(OutcomeLine{Stage: "api", RequestID: id.New(), Outcome: "rejected", Failed: true,
			Err: apperr.Unavailable("queue", errors.New("kafka: broker down"))})
	}
	if got := logs.Len() - before; got != 20 {
		t.Errorf("wrote %d of 20 failure lines", got)
	}
	last := logs.All()[logs.Len()-1].ContextMap()
	if last["error_code"] != "UNAVAILABLE" || last["event"] != OutcomeEvent || last["outcome"] != "rejected" {
		t.Errorf("failure line = %v", last)
	}
	for _, k := range []string{"event", "stage", "poll_id", "request_id", "http_request_id", "outcome", "duplicate", "processing_ms"} {
		if _, ok := last[k]; !ok {
			t.Errorf("line lacks %q", k)
		}
	}
}

func TestOutcomeLogSampleOneKeepsAll(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	l := NewOutcomeLog(zap.New(core), 0)
	for range 50 {
		l.Write(OutcomeLine{RequestID: id.New(), Outcome: "recorded"})
	}
	if logs.Len() != 50 {
		t.Errorf("wrote %d of 50", logs.Len())
	}
}

// A line written inside a trace carries its trace_id; one outside has no
// such key at all.
func TestOutcomeLineTraceID(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	l := NewOutcomeLog(zap.New(core), 1)
	l.Write(OutcomeLine{Stage: "api", RequestID: id.New(), Outcome: "accepted", Trace: zap.Skip()})
	l.Write(OutcomeLine{Stage: "api", RequestID: id.New(), Outcome: "accepted", Trace: zap.String("trace_id", "0af7651916cd43dd8448eb211c80319c")})
	lines := logs.AllUntimed()
	if _, ok := lines[0].ContextMap()["trace_id"]; ok {
		t.Fatalf("untraced line %v has a trace_id", lines[0].ContextMap())
	}
	if got := lines[1].ContextMap()["trace_id"]; got != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("traced line's trace_id %v", got)
	}
}
