package votes

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tracing"
	"github.com/tally-vote/tally/pkg/vote"
)

// discard is a producer that keeps nothing, so allocation counts are the
// queue's own.
type discard struct{ last kafka.Message }

func (d *discard) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	d.last = msgs[0]
	return nil
}

func testBallot() (*poll.Poll, *vote.Ballot) {
	p := &poll.Poll{ID: id.New(), OptionsVersion: 1}
	return p, &vote.Ballot{PollID: p.ID, VoterID: id.New(), VoteID: id.New(), RequestID: id.New(), OptionIDs: []id.ID{id.New()}}
}

// With tracing on, the produce is a producer span of the request's trace
// and the message's headers carry it; the value is the same bytes either
// way. With tracing off there are no headers.
func TestEnqueueSpansAndInjectsOnlyWhenTracing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := tracing.NewProvider(sdktrace.WithSpanProcessor(rec))
	p, b := testBallot()
	cfg := Config{ProduceTimeout: time.Second, KafkaCooldown: time.Second, KafkaDownAfter: time.Second}

	off := &discard{}
	if err := New(cfg, off, zap.NewNop(), time.Now, prometheus.NewRegistry()).Enqueue(context.Background(), p, time.Unix(1, 0), b); err != nil {
		t.Fatal(err)
	}
	if off.last.Headers != nil {
		t.Fatalf("tracing off: headers %v", off.last.Headers)
	}

	on := &discard{}
	q := New(cfg, on, zap.NewNop(), time.Now, prometheus.NewRegistry())
	q.Trace(tp, "tally.votes")
	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	if err := q.Enqueue(ctx, p, time.Unix(1, 0), b); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if !bytes.Equal(on.last.Value, off.last.Value) || !bytes.Equal(on.last.Key, off.last.Key) {
		t.Fatal("tracing changed the message's key or value")
	}
	spans := rec.Ended()
	if len(spans) != 2 || spans[0].Name() != "send tally.votes" || spans[0].SpanKind() != trace.SpanKindProducer {
		t.Fatalf("spans %v", spans)
	}
	send := spans[0]
	if send.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatal("the produce span is not the request's child")
	}
	if got := kafkax.ExtractTrace(on.last.Headers); got.SpanID() != send.SpanContext().SpanID() || got.TraceID() != send.SpanContext().TraceID() {
		t.Fatalf("headers carry %v, want the produce span %v", got, send.SpanContext())
	}
}

// Tracing off, a produce allocates what it did before tracing existed
// (9 for this ballot, measured on aebc993, the commit before); tracing must not
// add a header slice, a span or a context to it.
func TestEnqueueWithoutTracingAllocatesAsBefore(t *testing.T) {
	p, b := testBallot()
	q := New(Config{ProduceTimeout: time.Second, KafkaCooldown: time.Second, KafkaDownAfter: time.Second},
		&discard{}, zap.NewNop(), time.Now, prometheus.NewRegistry())
	ctx := context.Background()
	n := testing.AllocsPerRun(200, func() { _ = q.Enqueue(ctx, p, time.Unix(1, 0), b) })
	if n > allocsBeforeTracing {
		t.Fatalf("Enqueue with tracing off: %v allocations, want at most %d", n, allocsBeforeTracing)
	}
}

// The worker's apply is one consumer span per batch, linked to each
// message's producing span (here a poison message, which the drain
// dead-letters without touching Cassandra).
func TestWorkerApplySpanLinksProducers(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := tracing.NewProvider(sdktrace.WithSpanProcessor(rec))
	ctx, producer := tp.Tracer("test").Start(context.Background(), "send tally.votes")
	headers := kafkax.InjectTrace(ctx, nil)
	producer.End()

	in := &topic{msgs: []kafka.Message{{Topic: "tally.votes", Partition: 1, Offset: 7, Key: []byte("k"), Value: []byte("{"), Headers: headers}}}
	reg := prometheus.NewRegistry()
	drain := vote.NewDrainer(vote.DrainConfig{PoisonAttempts: 1, MaxBackoff: time.Millisecond},
		vote.DrainDeps{Log: zap.NewNop(), Registry: reg,
			Votes: vote.NewService(vote.Config{}, vote.Deps{Fence: nopFence{}, Log: zap.NewNop(), Now: time.Now}, prometheus.NewRegistry())})
	w := NewWorker(WorkerConfig{BatchSize: 8, BatchWait: time.Millisecond, Concurrency: 1},
		WorkerDeps{DLQ: &topic{}, Votes: drain, Log: zap.NewNop(), Registry: reg, Tracer: tp})
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(rctx, in) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		in.mu.Lock()
		n := len(in.committed)
		in.mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var apply sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "process tally.votes" {
			apply = s
		}
	}
	if apply == nil || apply.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("no apply span in %v", rec.Ended())
	}
	links := apply.Links()
	if len(links) != 1 || links[0].SpanContext.SpanID() != producer.SpanContext().SpanID() ||
		links[0].SpanContext.TraceID() != producer.SpanContext().TraceID() {
		t.Fatalf("apply links %+v, want the producer %v", links, producer.SpanContext())
	}
}

const allocsBeforeTracing = 9
