package vote

import (
	"hash/fnv"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
)

// OutcomeEvent is the `event` of the one structured line each vote
// outcome writes, on the API (stage "api") and in the worker (stage
// "worker"). Its keys are stable: event, stage, poll_id, request_id (the
// vote's request id, the one a 202 returns and the votes topic carries),
// http_request_id (the X-Request-Id of the HTTP request that cast it),
// outcome, duplicate, processing_ms, and error_code when it failed.
// Voter ids, IP addresses, user agents and idempotency keys are never
// logged.
const OutcomeEvent = "vote_outcome"

// OutcomeLog writes vote outcome lines, sampled on the hot path: a line
// whose outcome is not a failure is written for 1 request in every
// Sample, chosen by a hash of the request id, so the API's and the
// worker's lines of one vote are kept or dropped together. Failures are
// always written.
type OutcomeLog struct {
	log    *zap.Logger
	sample uint32
}

// NewOutcomeLog writes to log, keeping 1 in sample successful outcomes
// (sample <= 1 keeps all).
func NewOutcomeLog(log *zap.Logger, sample int) *OutcomeLog {
	return &OutcomeLog{log: log, sample: uint32(max(sample, 1))}
}

// Sampled reports whether the lines of request id are kept.
func (l *OutcomeLog) Sampled(id id.ID) bool {
	if l.sample <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write(id[:])
	return h.Sum32()%l.sample == 0
}

// OutcomeLine is one vote's outcome at one stage.
type OutcomeLine struct {
	Stage         string // api, worker
	PollID        id.ID
	RequestID     id.ID
	HTTPRequestID string
	Outcome       string
	Duplicate     bool
	Failed        bool
	Took          time.Duration
	Err           error
	Fields        []zap.Field // stage-specific extras (the worker's queued_ms)
	// Trace, when its Key is set, is the line's trace_id
	// (tracing.LogField of the request's context).
	Trace zap.Field
}

// Write writes the line if it is sampled (failures always are).
func (l *OutcomeLog) Write(o OutcomeLine) {
	if l == nil || (!o.Failed && !l.Sampled(o.RequestID)) {
		return
	}
	f := make([]zap.Field, 0, 10+len(o.Fields))
	f = append(f,
		zap.String("event", OutcomeEvent),
		zap.String("stage", o.Stage),
		zap.String("poll_id", o.PollID.String()),
		zap.String("request_id", requestIDString(o.RequestID)),
		zap.String("http_request_id", o.HTTPRequestID),
		zap.String("outcome", o.Outcome),
		zap.Bool("duplicate", o.Duplicate),
		zap.Float64("processing_ms", float64(o.Took.Microseconds())/1000),
	)
	if o.Err != nil {
		f = append(f, zap.Stringer("error_code", apperr.CodeOf(o.Err)))
	}
	f = append(f, o.Fields...)
	if o.Trace.Key != "" {
		f = append(f, o.Trace)
	}
	if o.Failed {
		l.log.Warn("vote outcome", f...)
		return
	}
	l.log.Info("vote outcome", f...)
}

func requestIDString(rid id.ID) string {
	if rid == (id.ID{}) {
		return ""
	}
	return rid.String()
}

// Outcomes is the service's outcome log, for the worker's lines.
func (s *Service) Outcomes() *OutcomeLog { return s.outcomes }
