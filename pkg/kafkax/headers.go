package kafkax

import (
	"context"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Headers carries a trace context in a Kafka message's headers
// (traceparent, tracestate, baggage), so a consumer can link its work to
// the request that produced the message.
type Headers []kafka.Header

var _ propagation.TextMapCarrier = (*Headers)(nil)

// Get returns the value of key's first header.
func (h *Headers) Get(key string) string {
	for _, kh := range *h {
		if kh.Key == key {
			return string(kh.Value)
		}
	}
	return ""
}

// Set replaces key's header, or adds it.
func (h *Headers) Set(key, value string) {
	for i, kh := range *h {
		if kh.Key == key {
			(*h)[i].Value = []byte(value)
			return
		}
	}
	*h = append(*h, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys lists the header keys.
func (h *Headers) Keys() []string {
	out := make([]string, len(*h))
	for i, kh := range *h {
		out[i] = kh.Key
	}
	return out
}

// InjectTrace returns headers with ctx's trace context added by the
// process's propagator. Without a span in ctx (tracing off) it returns
// headers as they are and allocates nothing, so the message is the same
// bytes it was before tracing existed.
func InjectTrace(ctx context.Context, headers []kafka.Header) []kafka.Header {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return headers
	}
	h := Headers(headers)
	otel.GetTextMapPropagator().Inject(ctx, &h)
	return h
}

// ExtractTrace returns the span context a message's producer injected;
// it is not valid when the message carries none.
func ExtractTrace(headers []kafka.Header) trace.SpanContext {
	if len(headers) == 0 {
		return trace.SpanContext{}
	}
	h := Headers(headers)
	return trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(context.Background(), &h))
}
