package tracing

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap/zapcore"
)

func TestEnabledOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, false},
	} {
		if got := Enabled(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("%v: enabled %v, want %v", tc.env, got, tc.want)
		}
	}
}

func TestLogFieldOnlyInATrace(t *testing.T) {
	if f := LogField(context.Background()); f.Type != zapcore.SkipType {
		t.Fatalf("field %v outside a trace", f)
	}
	if n := testing.AllocsPerRun(100, func() { _ = LogField(context.Background()) }); n != 0 {
		t.Fatalf("LogField outside a trace: %v allocations", n)
	}
	tp := NewProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "x")
	defer span.End()
	f := LogField(ctx)
	if f.Key != "trace_id" || f.String != span.SpanContext().TraceID().String() {
		t.Fatalf("field %+v", f)
	}
}

func TestChildOnlyStartsNoTraces(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := NewProvider(sdktrace.WithSpanProcessor(rec))
	child := ChildOnly(tp).Tracer("redis")
	_, orphan := child.Start(context.Background(), "ping")
	orphan.End()
	if orphan.SpanContext().IsValid() || len(rec.Ended()) != 0 {
		t.Fatal("a span started outside a trace")
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	_, sp := child.Start(ctx, "evalsha")
	sp.End()
	parent.End()
	if got := rec.Ended(); len(got) != 2 || got[0].Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("spans %v", got)
	}
	var _ trace.TracerProvider = ChildOnly(tp)
}
