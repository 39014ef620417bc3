// Package tracing switches OpenTelemetry tracing on from the standard OTEL_*
// variables and holds the small pieces the rest of Tally shares: the trace
// id of a log line, and a provider whose spans only continue a trace.
package tracing

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"
)

// Scope is the instrumentation scope of the spans Tally starts itself.
const Scope = "github.com/tally-vote/tally"

// MaxLinks is the link limit of a span unless OTEL_SPAN_LINK_COUNT_LIMIT
// says otherwise. The worker's apply span links every vote of its batch
// to the request that produced it, and a batch is up to 512 messages
// (TALLY_WORKER_BATCH_SIZE); the SDK's default of 128 would drop links.
const MaxLinks = 1024

// Enabled reports whether the OTEL_* variables (read with getenv) ask for
// traces. Tracing is off unless an exporter is named
// (OTEL_TRACES_EXPORTER other than "none") or an OTLP endpoint is set;
// the SDK's own default exporter (OTLP to localhost) would otherwise make
// every process send spans to a collector nobody started.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))) {
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	case "none":
		return false
	}
	return true
}

// Setup builds the process's tracer provider from the OTEL_* variables:
// nil when tracing is off, so callers install no instrumentation at all
// and the request path pays nothing. The exporter is contrib's autoexport
// (OTEL_TRACES_EXPORTER=otlp|console|none, OTEL_EXPORTER_OTLP_*); the
// sampler (OTEL_TRACES_SAMPLER), the span limits (OTEL_SPAN_*) and the
// resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) are the SDK's.
// The caller shuts the provider down on exit, which flushes its batch.
func Setup(ctx context.Context, log *zap.Logger) (*sdktrace.TracerProvider, error) {
	if !Enabled(os.Getenv) {
		return nil, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("trace exporter: %w", err)
	}
	// From the environment last, so OTEL_SERVICE_NAME overrides the name.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "tally")),
		resource.WithTelemetrySDK(), resource.WithHost(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	log.Info("tracing on", zap.String("exporter", fmt.Sprintf("%T", exp)),
		zap.String("otel_traces_exporter", os.Getenv("OTEL_TRACES_EXPORTER")))
	return NewProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// NewProvider is an SDK tracer provider with Tally's link limit, and sets
// the process's propagator to W3C trace context and baggage (the global
// one is a no-op until set, and Kafka headers and otelgin read it). Tests
// build theirs with an in-memory exporter through it.
func NewProvider(opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	limits := sdktrace.NewSpanLimits()
	if os.Getenv("OTEL_SPAN_LINK_COUNT_LIMIT") == "" {
		limits.LinkCountLimit = MaxLinks
	}
	return sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithRawSpanLimits(limits)}, opts...)...)
}
