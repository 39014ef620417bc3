package app

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/tracing"
)

// SetupTracing builds the process's tracer provider from the OTEL_* variables:
// nil when tracing is off, so callers install no instrumentation at all
// and the request path pays nothing. The exporter is contrib's autoexport
// (OTEL_TRACES_EXPORTER=otlp|console|none, OTEL_EXPORTER_OTLP_*); the
// sampler (OTEL_TRACES_SAMPLER), the span limits (OTEL_SPAN_*) and the
// resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) are the SDK's.
// The caller shuts the provider down on exit, which flushes its batch.
func SetupTracing(ctx context.Context, log *zap.Logger) (*sdktrace.TracerProvider, error) {
	if !tracing.Enabled(os.Getenv) {
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
	return tracing.NewProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}
