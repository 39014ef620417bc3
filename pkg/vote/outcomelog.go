package vote

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/gocql/gocql"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/reqid"
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
func (l *OutcomeLog) Sampled(id gocql.UUID) bool {
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
	PollID        gocql.UUID
	RequestID     gocql.UUID
	HTTPRequestID string
	Outcome       string
	Duplicate     bool
	Failed        bool
	Took          time.Duration
	Err           error
	Fields        []zap.Field // stage-specific extras (the worker's queued_ms)
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
		f = append(f, zap.String("error_code", errorCode(o.Err)))
	}
	f = append(f, o.Fields...)
	if o.Failed {
		l.log.Warn("vote outcome", f...)
		return
	}
	l.log.Info("vote outcome", f...)
}

// errorCode is the SPEC code an error maps to; never the error's text,
// which may carry a dependency's details.
func errorCode(err error) string {
	var (
		ae *apperr.Error
		ve *apperr.ValidationError
	)
	switch {
	case errors.As(err, &ve):
		return "VALIDATION_FAILED"
	case errors.As(err, &ae):
		return ae.Code
	}
	return "INTERNAL"
}

func requestIDString(id gocql.UUID) string {
	if id == (gocql.UUID{}) {
		return ""
	}
	return id.String()
}

// Cast is the act of voting: it builds the ballot r asks for and casts it
// (see cast), then writes the outcome line.
func (s *Service) Cast(ctx context.Context, p *poll.Poll, seenAt time.Time, r Request) (Receipt, error) {
	start := time.Now()
	b := s.ballot(r)
	rec, err := s.cast(ctx, p, seenAt, b, abuse.Signals{IP: r.IP, UserAgent: r.UserAgent, Device: b.Device,
		Anonymous: r.Anonymous, AccountCreated: r.AccountCreated})
	line := OutcomeLine{Stage: "api", PollID: r.PollID, RequestID: b.RequestID, HTTPRequestID: reqid.From(ctx),
		Took: time.Since(start), Err: err}
	if len(b.Flags) > 0 {
		line.Fields = append(line.Fields, zap.Strings("flags", b.Flags))
	}
	switch {
	case err == nil && rec.Recorded != nil:
		line.Outcome = "recorded"
	case err == nil:
		line.Outcome = "accepted"
	case errors.Is(err, ErrAlreadyVoted):
		line.Outcome, line.Duplicate = "duplicate", true
	case errors.Is(err, abuse.ErrSuspicious):
		line.Outcome = "suspicious"
	case errors.Is(err, apperr.ErrUnavailable):
		line.Outcome, line.Failed = "rejected", true
	default:
		// The voting rules said no (closed poll, unknown option, ...): the
		// client's mistake, logged at the sampled rate.
		line.Outcome = "refused"
	}
	s.outcomes.Write(line)
	return rec, err
}

// Outcomes is the service's outcome log, for the worker's lines.
func (s *Service) Outcomes() *OutcomeLog { return s.outcomes }
