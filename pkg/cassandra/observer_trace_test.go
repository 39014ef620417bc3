package cassandra

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// A statement run inside a trace becomes a client span of it with the
// driver's own timing; one run outside a trace starts none, and an
// observer without Trace records no spans at all.
func TestObserverSpansStatementsInATrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	o := NewObserver(prometheus.NewRegistry())
	o.Trace(tp)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "apply")
	start := time.Unix(100, 0)
	o.ObserveQuery(ctx, gocql.ObservedQuery{Statement: "INSERT INTO votes (a) VALUES (?) IF NOT EXISTS",
		Start: start, End: start.Add(3 * time.Millisecond)})
	o.ObserveBatch(ctx, gocql.ObservedBatch{Statements: []string{"UPDATE tallies SET votes = votes + ? WHERE a = ?"},
		Start: start, End: start.Add(time.Millisecond), Err: errors.New("boom")})
	o.ObserveQuery(context.Background(), gocql.ObservedQuery{Statement: "SELECT a FROM polls", Start: start, End: start})
	parent.End()

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want lwt, batch and the parent", len(spans))
	}
	lwt, batch := spans[0], spans[1]
	if lwt.Name() != "lwt votes" || lwt.SpanKind() != trace.SpanKindClient || lwt.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("lwt span %q kind %v parent %v", lwt.Name(), lwt.SpanKind(), lwt.Parent())
	}
	if !lwt.StartTime().Equal(start) || lwt.EndTime().Sub(lwt.StartTime()) != 3*time.Millisecond {
		t.Fatalf("lwt span %v–%v, want the driver's times", lwt.StartTime(), lwt.EndTime())
	}
	if batch.Name() != "batch tallies" || batch.Status().Code != codes.Error {
		t.Fatalf("batch span %q status %v", batch.Name(), batch.Status())
	}

	off := NewObserver(prometheus.NewRegistry())
	n := testing.AllocsPerRun(100, func() {
		off.ObserveQuery(ctx, gocql.ObservedQuery{Statement: "SELECT a FROM polls", Start: start, End: start})
	})
	if len(rec.Ended()) != 3 {
		t.Fatal("an observer without Trace recorded spans")
	}
	if n != 0 {
		t.Fatalf("observing a query with tracing off: %v allocations, want 0", n)
	}
}
