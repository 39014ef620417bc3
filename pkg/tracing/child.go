package tracing

import (
	"context"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// ChildOnly wraps tp so its tracers start a span only inside an existing
// trace. Redis is called from background loops (live notices, poll
// changes, the breaker's probes) as well as from requests; their
// commands would each become a trace of one span.
func ChildOnly(tp trace.TracerProvider) trace.TracerProvider { return childProvider{tp: tp} }

type childProvider struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (p childProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childTracer{t: p.tp.Tracer(name, opts...)}
}

type childTracer struct {
	embedded.Tracer
	t trace.Tracer
}

func (t childTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.t.Start(ctx, name, opts...)
}
