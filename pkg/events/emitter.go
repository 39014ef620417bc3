package events

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// queueSize bounds the events waiting for Kafka; past it an event is
// dropped (counted), so a slow or absent broker never holds a caller.
const queueSize = 4096

// writeTimeout bounds one batch's write.
const writeTimeout = 10 * time.Second

// Writer is what the emitter writes through (a kafka-go writer on the
// events topic).
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// Emitter publishes events to the events topic in the background: Emit
// never waits for Kafka. Delivery is best effort (no outbox): an event
// lost to a full queue, a failed write or a crash is logged and counted.
type Emitter struct {
	w   Writer
	log *zap.Logger
	m   *prometheus.CounterVec

	mu     sync.Mutex
	closed bool
	q      chan kafka.Message
	done   chan struct{}
}

// NewEmitter starts an emitter writing through w and registers its
// counter (tally_events_total by type and result: published, failed,
// dropped, encode_failed).
func NewEmitter(w Writer, log *zap.Logger, reg prometheus.Registerer) *Emitter {
	m := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_events_total",
		Help: "Public events (tally.events) by type and result: published, failed (the Kafka write failed), dropped (the queue was full or the emitter closed), encode_failed.",
	}, []string{"type", "result"})
	for _, t := range []string{TypePollCreated, TypePollClosed, TypeTallyFrozen, TypeResultsChanged} {
		for _, r := range []string{"published", "failed", "dropped"} {
			m.WithLabelValues(t, r)
		}
	}
	if reg != nil {
		reg.MustRegister(m)
	}
	e := &Emitter{w: w, log: log, m: m, q: make(chan kafka.Message, queueSize), done: make(chan struct{})}
	go e.run()
	return e
}

// Emit queues the event; it never blocks.
func (e *Emitter) Emit(ev Event) {
	b, err := json.Marshal(ev)
	if err != nil {
		e.m.WithLabelValues(ev.Type, "encode_failed").Inc()
		e.log.Warn("encode event", zap.String("type", ev.Type), zap.Error(err))
		return
	}
	msg := kafka.Message{Key: []byte(ev.Subject), Value: b, Headers: []kafka.Header{
		{Key: "content-type", Value: []byte(ContentType)},
		{Key: "ce_type", Value: []byte(ev.Type)},
	}}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		e.m.WithLabelValues(ev.Type, "dropped").Inc()
		return
	}
	select {
	case e.q <- msg:
	default:
		e.m.WithLabelValues(ev.Type, "dropped").Inc()
		e.log.Warn("event queue full: event dropped", zap.String("type", ev.Type), zap.String("subject", ev.Subject))
	}
}

func (e *Emitter) run() {
	defer close(e.done)
	batch := make([]kafka.Message, 0, 64)
	for msg := range e.q {
		batch = append(batch[:0], msg)
	fill:
		for len(batch) < cap(batch) {
			select {
			case m, ok := <-e.q:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		e.write(batch)
	}
}

func typeOf(m kafka.Message) string {
	for _, h := range m.Headers {
		if h.Key == "ce_type" {
			return string(h.Value)
		}
	}
	return ""
}

func (e *Emitter) write(batch []kafka.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	err := e.w.WriteMessages(ctx, batch...)
	for _, m := range batch {
		if err != nil {
			e.m.WithLabelValues(typeOf(m), "failed").Inc()
		} else {
			e.m.WithLabelValues(typeOf(m), "published").Inc()
		}
	}
	if err != nil {
		e.log.Warn("publish events: lost (best effort)", zap.Int("events", len(batch)), zap.Error(err))
	}
}

// Close stops taking events, writes those queued (bounded by the write
// timeout) and closes the writer.
func (e *Emitter) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	close(e.q)
	e.mu.Unlock()
	<-e.done
	if err := e.w.Close(); err != nil {
		e.log.Warn("close events writer", zap.Error(err))
	}
}

// Discard is a Writer that drops every event (no events topic set).
type Discard struct{}

// WriteMessages drops the messages.
func (Discard) WriteMessages(context.Context, ...kafka.Message) error { return nil }

// Close does nothing.
func (Discard) Close() error { return nil }
