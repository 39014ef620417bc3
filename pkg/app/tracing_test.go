package app

import (
	"context"
	"testing"

	"go.uber.org/zap"
)

func TestSetupOffByDefault(t *testing.T) {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	tp, err := SetupTracing(context.Background(), zap.NewNop())
	if tp != nil || err != nil {
		t.Fatalf("SetupTracing with no OTEL_* variables: %v, %v; want no provider", tp, err)
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	tp, err = SetupTracing(context.Background(), zap.NewNop())
	if tp == nil || err != nil {
		t.Fatalf("SetupTracing with OTEL_TRACES_EXPORTER=console: %v, %v", tp, err)
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
