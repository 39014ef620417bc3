package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/export"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
)

// exportMetrics count owner exports and their refusals; the rows and
// buckets they read are pkg/export's own metrics (source "owner").
type exportMetrics struct {
	exports  *prometheus.CounterVec
	refusals *prometheus.CounterVec
	rows     *export.Metrics
}

func newExportMetrics(reg prometheus.Registerer) *exportMetrics {
	m := &exportMetrics{
		exports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_owner_exports_total",
			Help: "Owner ballot exports (GET /v1/polls/{id}/export) by format and outcome: started, finished, " +
				"client_gone (the client went away, the scan stopped) or failed (a read failed; the answer was cut off " +
				"or, before its first byte, answered with an error)."},
			[]string{"format", "outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_owner_export_refusals_total",
			Help: "Owner export requests refused before any row was read, by reason: bad_format, not_owner, " +
				"rate_limited, unavailable."}, []string{"reason"}),
		rows: export.NewMetrics(reg),
	}
	reg.MustRegister(m.exports, m.refusals)
	return m
}

// exportContentTypes are the media types of the export formats, as the
// OpenAPI document names them.
var exportContentTypes = map[export.Format]string{
	export.CSV:   "text/csv; charset=utf-8",
	export.JSONL: "application/x-ndjson",
}

// exportPoll answers GET /v1/polls/{poll_id}/export?format=csv|jsonl: the
// poll's ballots, streamed to its owner alone (anyone else: 403
// NOT_POLL_OWNER, as the other owner routes), through pkg/export's Stream.
// Voters are per-poll pseudonyms (export.PollKey of the server's export
// key), voted_at is to the minute, and no IP, user agent, device, bot flag
// or request id is written. Each export costs one of the owner's
// ratelimit.Export allowance, counted only once the caller is known to be
// the owner and the request is valid.
//
// The status and headers are sent with the first bytes, which leave once
// the first index bucket has been read (or 64 KiB are ready): a read that
// fails before then is answered in the error envelope; one that fails
// later cuts the connection (no terminating chunk), so a client never
// takes a truncated export for a whole one. A client that goes away
// cancels the request's context and fails the next write; either stops
// the scan.
func (h *handlers) exportPoll(c *gin.Context) {
	m := h.exportMetrics
	format, err := export.ParseStreamFormat(c.DefaultQuery("format", string(export.CSV)))
	if err != nil {
		m.refusals.WithLabelValues("bad_format").Inc()
		abort(c, apperr.Invalid("format", "must be csv or jsonl"))
		return
	}
	p := h.pathPoll(c)
	if p == nil {
		return
	}
	caller, _ := principal(c)
	if caller.UserID != p.CreatorID {
		m.refusals.WithLabelValues("not_owner").Inc()
		abort(c, poll.ErrNotOwner)
		return
	}
	if hits := limitHits(c, h.exportRules); len(hits) > 0 {
		d, err := h.limiter.Allow(c.Request.Context(), ratelimit.Export, hits...)
		if err != nil {
			if errors.Is(err, apperr.ErrRateLimited) {
				m.refusals.WithLabelValues("rate_limited").Inc()
			} else {
				m.refusals.WithLabelValues("unavailable").Inc()
			}
			abort(c, err)
			return
		}
		rateHeaders(c, d)
	}
	if h.exports == nil || len(h.exportKey) == 0 {
		m.refusals.WithLabelValues("unavailable").Inc()
		abort(c, apperr.ErrUnavailable)
		return
	}

	log := loggerFrom(c).With(zap.Stringer("poll_id", p.ID), zap.Stringer("user_id", caller.UserID),
		zap.String("format", string(format)))
	m.exports.WithLabelValues(string(format), "started").Inc()
	began := time.Now()
	rc := http.NewResponseController(c.Writer)
	// The request's body is read; a read deadline from here on would end
	// the connection's background read and cancel a long export. Its
	// end-of-file when the client closes is what should cancel it.
	_ = rc.SetReadDeadline(time.Time{})
	w := &exportWriter{c: c, rc: rc, timeout: h.writeTimeout, contentType: exportContentTypes[format],
		filename: "poll-" + p.ID.String() + "." + string(format)}
	rows, orphans, err := export.Stream(c.Request.Context(), h.exports, m.rows, export.StreamOptions{
		Poll: p.ID, Buckets: p.IndexBuckets, Format: format, Key: export.PollKey(h.exportKey, p.ID),
		Grain: export.VotedAtGrain, Label: "owner"}, w, func() {
		// Flushing before the first byte would send the status without
		// the export's headers, and lose the chance of an error answer.
		if w.started {
			_ = rc.Flush()
		}
	})
	fields := []zap.Field{zap.Int64("rows", rows), zap.Int64("orphans", orphans), zap.Int64("bytes", w.n),
		zap.Int64("duration_ms", time.Since(began).Milliseconds())}
	switch {
	case err == nil:
		if !w.started {
			w.start() // an empty poll's JSON Lines export has no bytes at all
		}
		m.exports.WithLabelValues(string(format), "finished").Inc()
		log.Info("owner export finished", fields...)
	case c.Request.Context().Err() != nil || w.failed:
		m.exports.WithLabelValues(string(format), "client_gone").Inc()
		log.Info("owner export stopped: the client went away", append(fields, zap.Error(err))...)
	case !w.started:
		m.exports.WithLabelValues(string(format), "failed").Inc()
		log.Warn("owner export failed before its first byte", append(fields, zap.Error(err))...)
		abort(c, err)
	default:
		m.exports.WithLabelValues(string(format), "failed").Inc()
		log.Error("owner export failed mid-stream; cutting the connection", append(fields, zap.Error(err))...)
		// Without the terminating chunk the client sees a broken transfer,
		// not a complete file that is short.
		panic(http.ErrAbortHandler)
	}
}

// exportWriter sends the export's status and headers with its first
// bytes, and moves the write deadline forward before every write, so an
// export may take longer than the server's WriteTimeout while a client
// that stops reading is still dropped after it.
type exportWriter struct {
	c                     *gin.Context
	rc                    *http.ResponseController
	timeout               time.Duration
	contentType, filename string
	started, failed       bool
	n                     int64
}

func (w *exportWriter) start() {
	w.started = true
	hd := w.c.Writer.Header()
	hd.Set("Content-Type", w.contentType)
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": w.filename}))
	hd.Set("Cache-Control", "no-store")
	w.c.Status(http.StatusOK)
	w.c.Writer.WriteHeaderNow()
}

func (w *exportWriter) Write(p []byte) (int, error) {
	if !w.started {
		w.start()
	}
	if w.timeout > 0 {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	n, err := w.c.Writer.Write(p)
	w.n += int64(n)
	if err != nil {
		w.failed = true
	}
	return n, err
}
