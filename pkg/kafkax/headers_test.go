package kafkax

import (
	"context"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestTraceRoundTripsThroughHeaders(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	// A stale traceparent is replaced, not duplicated; other headers stay.
	in := []kafka.Header{{Key: "source", Value: []byte("x")}, {Key: "traceparent", Value: []byte("stale")}}
	out := InjectTrace(ctx, in)
	if len(out) != 2 || out[0].Key != "source" {
		t.Fatalf("headers %v", out)
	}
	got := ExtractTrace(out)
	if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsRemote() {
		t.Fatalf("extracted %v, want %v", got, sc)
	}
	if ExtractTrace(nil).IsValid() || ExtractTrace(in[:1]).IsValid() {
		t.Fatal("a message without a traceparent has no trace")
	}
}

// With tracing off the produce path's messages are what they were:
// no headers, and no allocation to find that out.
func TestInjectWithoutSpanIsFree(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	ctx := context.Background()
	if h := InjectTrace(ctx, nil); h != nil {
		t.Fatalf("headers %v without a span", h)
	}
	if n := testing.AllocsPerRun(100, func() { _ = InjectTrace(ctx, nil) }); n != 0 {
		t.Fatalf("InjectTrace without a span: %v allocations, want 0", n)
	}
}
