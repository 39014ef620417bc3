package tracing

import (
	"context"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// LogField is the trace_id field of a log line written while ctx's span
// is current, or a field zap skips when ctx carries no trace. It is added
// where a line is written rather than to a per-request logger: a zap
// logger With a field costs an allocation on every request (see
// httpapi.loggerFrom), and most requests log nothing.
func LogField(ctx context.Context) zap.Field {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return zap.Skip()
	}
	return zap.String("trace_id", sc.TraceID().String())
}
