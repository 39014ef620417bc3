// Package reconcile carries reconciliation requests over the reconcile
// topic: Requests sends them (tally.RequestSender) and ConsumeRequests
// hands them to the reconciler.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/retry"
	"github.com/tally-vote/tally/pkg/tally"
)

// Producer is the slice of kafka.Writer the requests use.
type Producer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Fetcher is the slice of kafka.Reader the consumer uses.
type Fetcher interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Requests carries reconciliation requests on the reconciliation topic
// (implements tally.RequestSender).
type Requests struct{ producer Producer }

// NewRequests sends through producer.
func NewRequests(producer Producer) Requests { return Requests{producer: producer} }

// Send produces one request, keyed by poll.
func (r Requests) Send(ctx context.Context, req tally.ReconcileRequest) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return r.producer.WriteMessages(ctx, kafka.Message{Key: req.PollID[:], Value: body})
}

// ConsumeRequests hands the reconciliation topic's requests to handle until
// ctx ends, committing each after it was handled (a failed run is logged:
// the schedule and later requests cover it).
func ConsumeRequests(ctx context.Context, reader Fetcher, handle func(context.Context, tally.ReconcileRequest) error, log *zap.Logger) error {
	for {
		m, err := reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("fetch reconciliation request", zap.Error(err))
			_ = retry.Sleep(ctx, time.Second)
			continue
		}
		var req tally.ReconcileRequest
		if err := json.Unmarshal(m.Value, &req); err != nil || req.PollID == (id.ID{}) {
			log.Error("malformed reconciliation request dropped", zap.ByteString("value", m.Value))
		} else if err := handle(ctx, req); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, poll.ErrNotFound) && !errors.Is(err, tally.ErrBusy) {
				log.Warn("reconcile", zap.Stringer("poll_id", req.PollID), zap.Error(err))
			}
		}
		if err := reader.CommitMessages(context.WithoutCancel(ctx), m); err != nil {
			return err
		}
	}
}
