// Package tracing holds the OpenTelemetry pieces Tally's packages share:
// when the OTEL_* variables switch tracing on, the provider's settings,
// the trace id of a log line, and a provider whose spans only continue a
// trace. The exporters are wired in pkg/app (SetupTracing), so domain
// packages that log a trace id do not import them.
package tracing

import (
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
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
