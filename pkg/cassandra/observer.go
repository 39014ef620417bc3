package cassandra

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tally-vote/tally/pkg/tracing"
)

// Observer observes every statement and batch of a gocql session: latency by
// statement kind and table, errors by kind, and Paxos contention of
// conditional writes (LWT). Install it with Install on a ClusterConfig.
type Observer struct {
	latency    *prometheus.HistogramVec
	errors     *prometheus.CounterVec
	contention *prometheus.CounterVec
	connects   *prometheus.CounterVec

	mu    sync.RWMutex
	kinds map[string]Statement

	// tracer, when set (Trace), records each attempt as a span of the
	// query's trace; nil costs nothing.
	tracer trace.Tracer
}

// NewObserver registers the Cassandra client series on reg.
func NewObserver(reg prometheus.Registerer) *Observer {
	o := &Observer{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tally_cassandra_query_duration_seconds",
			Help:    "Latency of each Cassandra request attempt by statement kind (select, insert, update, delete, lwt, batch, schema, other) and table.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind", "table"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_cassandra_query_errors_total",
			Help: "Failed Cassandra request attempts by statement kind and error (write_timeout, read_timeout, unavailable, overloaded, cas_unknown, no_response, no_connections, other).",
		}, []string{"kind", "error"}),
		contention: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_cassandra_lwt_contention_total",
			Help: "Conditional writes (LWT) that met Paxos contention, by cause: cas_write_timeout (the Paxos round timed out), cas_unknown (outcome not known), retry (the driver tried again).",
		}, []string{"cause"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_cassandra_connects_total",
			Help: "Connections the driver's pool opened to Cassandra nodes, by result (ok, error).",
		}, []string{"result"}),
		kinds: map[string]Statement{},
	}
	reg.MustRegister(o.latency, o.errors, o.contention, o.connects)
	for _, c := range []string{"cas_write_timeout", "cas_unknown", "retry"} {
		o.contention.WithLabelValues(c)
	}
	return o
}

// Install sets o as the query, batch and connect observer of cl.
func (o *Observer) Install(cl *gocql.ClusterConfig) {
	cl.QueryObserver = o
	cl.BatchObserver = o
	cl.ConnectObserver = o
}

// Trace makes o record every statement and batch attempt run inside a
// trace as a client span of it (named "lwt votes", "batch tallies", …).
// There is no maintained gocql instrumentation (contrib's otelgocql was
// removed), and the observer already sees each attempt with its context,
// timing and error. Statements outside a trace (background reads, the
// reconciler's scans) start no trace of their own.
func (o *Observer) Trace(tp trace.TracerProvider) { o.tracer = tp.Tracer(tracing.Scope) }

// Statement is a CQL statement's kind and table.
type Statement struct{ Kind, Table string }

// maxStatements bounds the classification cache; statements beyond it are
// classified on every call (Tally prepares a few dozen).
const maxStatements = 4096

func (o *Observer) classify(stmt string) Statement {
	o.mu.RLock()
	s, ok := o.kinds[stmt]
	o.mu.RUnlock()
	if ok {
		return s
	}
	s = Classify(stmt)
	o.mu.Lock()
	if len(o.kinds) < maxStatements {
		o.kinds[stmt] = s
	}
	o.mu.Unlock()
	return s
}

// ObserveQuery implements gocql.QueryObserver.
func (o *Observer) ObserveQuery(ctx context.Context, q gocql.ObservedQuery) {
	s := o.classify(q.Statement)
	o.observe(s, q.End.Sub(q.Start).Seconds(), q.Err, q.Attempt)
	if o.tracer != nil {
		o.span(ctx, s, q.Statement, q.Start, q.End, q.Err, q.Attempt, q.Host)
	}
}

// ObserveBatch implements gocql.BatchObserver. A batch's table is its
// first statement's.
func (o *Observer) ObserveBatch(ctx context.Context, b gocql.ObservedBatch) {
	s := Statement{Kind: "batch", Table: "other"}
	if len(b.Statements) > 0 {
		s.Table = o.classify(b.Statements[0]).Table
		if o.classify(b.Statements[0]).Kind == "lwt" {
			s.Kind = "lwt"
		}
	}
	o.observe(s, b.End.Sub(b.Start).Seconds(), b.Err, b.Attempt)
	if o.tracer != nil {
		stmt := ""
		if len(b.Statements) > 0 {
			stmt = b.Statements[0]
		}
		o.span(ctx, s, stmt, b.Start, b.End, b.Err, b.Attempt, b.Host, attribute.Int("db.operation.batch.size", len(b.Statements)))
	}
}

// span records one attempt, after the fact, with the times the driver
// measured. The statement text has bind markers, never values.
func (o *Observer) span(ctx context.Context, s Statement, stmt string, start, end time.Time, err error, attempt int,
	host *gocql.HostInfo, extra ...attribute.KeyValue) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	attrs := append([]attribute.KeyValue{
		attribute.String("db.system.name", "cassandra"),
		attribute.String("db.operation.name", s.Kind),
		attribute.String("db.collection.name", s.Table),
		attribute.String("db.query.text", stmt),
		attribute.Int("cassandra.attempt", attempt),
	}, extra...)
	if host != nil {
		attrs = append(attrs, attribute.String("cassandra.coordinator", host.HostnameAndPort()))
	}
	_, sp := o.tracer.Start(ctx, s.Kind+" "+s.Table, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	if err != nil {
		kind := ErrorKind(err)
		sp.SetAttributes(attribute.String("error.type", kind))
		sp.RecordError(err, trace.WithTimestamp(end))
		sp.SetStatus(codes.Error, kind)
	}
	sp.End(trace.WithTimestamp(end))
}

// ObserveConnect implements gocql.ConnectObserver.
func (o *Observer) ObserveConnect(c gocql.ObservedConnect) {
	if c.Err != nil {
		o.connects.WithLabelValues("error").Inc()
		return
	}
	o.connects.WithLabelValues("ok").Inc()
}

func (o *Observer) observe(s Statement, seconds float64, err error, attempt int) {
	o.latency.WithLabelValues(s.Kind, s.Table).Observe(seconds)
	if s.Kind == "lwt" && attempt > 0 {
		o.contention.WithLabelValues("retry").Inc()
	}
	if err == nil {
		return
	}
	kind := ErrorKind(err)
	o.errors.WithLabelValues(s.Kind, kind).Inc()
	if s.Kind != "lwt" {
		return
	}
	var wt *gocql.RequestErrWriteTimeout
	switch {
	case errors.As(err, &wt) && strings.EqualFold(wt.WriteType, "CAS"):
		o.contention.WithLabelValues("cas_write_timeout").Inc()
	case kind == "cas_unknown":
		o.contention.WithLabelValues("cas_unknown").Inc()
	}
}

// ErrorKind names a driver error with one of a fixed set of values.
func ErrorKind(err error) string {
	var (
		wt  *gocql.RequestErrWriteTimeout
		rt  *gocql.RequestErrReadTimeout
		un  *gocql.RequestErrUnavailable
		cas *gocql.RequestErrCASWriteUnknown
		re  gocql.RequestError
	)
	switch {
	case errors.As(err, &wt):
		return "write_timeout"
	case errors.As(err, &rt):
		return "read_timeout"
	case errors.As(err, &un):
		return "unavailable"
	case errors.As(err, &cas):
		return "cas_unknown"
	case errors.Is(err, gocql.ErrTimeoutNoResponse), errors.Is(err, context.DeadlineExceeded):
		return "no_response"
	case errors.Is(err, gocql.ErrNoConnections), errors.Is(err, gocql.ErrConnectionClosed):
		return "no_connections"
	case errors.As(err, &re) && re.Code() == gocql.ErrCodeOverloaded:
		return "overloaded"
	}
	return "other"
}

var (
	lwtRe       = regexp.MustCompile(`(?is)\bIF\s+(NOT\s+EXISTS|EXISTS|[a-z_"])`)
	tableRe     = regexp.MustCompile(`(?is)^\s*(?:SELECT\s.*?\sFROM|INSERT\s+INTO|UPDATE|DELETE\s.*?\bFROM|DELETE\s+FROM)\s+([a-z0-9_."]+)`)
	tableNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)
)

// Classify reads a CQL statement's kind and table. The table drops its
// keyspace (test keyspaces are per run) and is "other" unless it is a
// plain identifier, so the label stays bounded by the schema.
func Classify(stmt string) Statement {
	t := strings.TrimSpace(stmt)
	verb := strings.ToUpper(strings.SplitN(t, " ", 2)[0])
	s := Statement{Kind: "other", Table: "other"}
	switch verb {
	case "SELECT", "INSERT", "UPDATE", "DELETE":
		s.Kind = strings.ToLower(verb)
		if verb != "SELECT" && lwtRe.MatchString(t) {
			s.Kind = "lwt"
		}
	case "BEGIN", "APPLY":
		s.Kind = "batch"
	case "CREATE", "ALTER", "DROP", "TRUNCATE":
		s.Kind = "schema"
		return s
	default:
		return s
	}
	if m := tableRe.FindStringSubmatch(t); m != nil {
		name := strings.ToLower(strings.Trim(m[1], `"`))
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			name = strings.Trim(name[i+1:], `"`)
		}
		if tableNameRe.MatchString(name) {
			s.Table = name
		}
	}
	return s
}
