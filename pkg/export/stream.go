package export

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/vote"
)

// VotedAtGrain is how coarsely an owner export states voted_at: to the
// minute. A poll owner sees when ballots arrived, not the millisecond that
// could be matched against a voter's own account of when they voted (or
// against the owner's access logs).
const VotedAtGrain = time.Minute

// ownerKeyLabel separates the per-poll keys of owner exports from every
// other use of the server secret.
const ownerKeyLabel = "tally owner export v1\x00"

// PollKey is the pseudonym key of one poll's owner exports:
// HMAC-SHA256(secret, label ‖ poll id). Pseudonyms made with it
// (Pseudonym(PollKey(secret, poll), voter)) are stable for a voter within
// the poll, across exports and restarts, and unrelated across polls, so
// the exports of two polls cannot be joined on the voter column; without
// the secret a pseudonym cannot be turned back into a voter id.
func PollKey(secret []byte, pollID id.ID) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ownerKeyLabel))
	m.Write(pollID[:])
	return m.Sum(nil)
}

// Coarsen truncates t (in UTC) to grain; a grain of 0 or less keeps t.
func Coarsen(t time.Time, grain time.Duration) time.Time {
	if grain <= 0 {
		return t.UTC()
	}
	return t.UTC().Truncate(grain)
}

// StreamOptions select what Stream writes: one poll's ballots, voters
// pseudonymised with Key, voted_at coarsened to Grain, and never the IP,
// user agent, device, bot flags or request ids of a ballot.
type StreamOptions struct {
	Poll id.ID
	// Buckets is the poll's index bucket count (poll.Poll.IndexBuckets).
	Buckets int
	// Format is CSV or JSONL (Parquet cannot stream: its footer needs
	// every row first).
	Format Format
	// Key keys the voter pseudonyms (PollKey for an owner export).
	Key []byte
	// Grain coarsens voted_at (VotedAtGrain for an owner export).
	Grain time.Duration
	// Label is the source label of the rows metric ("owner").
	Label string
}

// ParseStreamFormat reads the format of a streamed export: csv or jsonl.
func ParseStreamFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case CSV, JSONL:
		return f, nil
	}
	return "", fmt.Errorf("format %q: want csv or jsonl", s)
}

// Stream writes one poll's ballots to w as they are read: the index
// buckets one after another, each paged from Cassandra (so a poll is never
// held in memory), through a 64 KiB buffer flushed after every bucket and
// whenever it fills; flush, if set, is called after each bucket (an HTTP
// flusher). It stops at the first error of w (a client that went away) or
// of ctx, and returns how many rows it wrote. Orphan index rows (no vote
// row) are skipped and counted, as Run does.
func Stream(ctx context.Context, src Source, m *Metrics, o StreamOptions, w io.Writer, flush func()) (rows, orphans int64, err error) {
	if _, err := ParseStreamFormat(string(o.Format)); err != nil {
		return 0, 0, err
	}
	if len(o.Key) < MinKeyBytes {
		return 0, 0, ErrNoKey
	}
	label := o.Label
	if label == "" {
		label = "stream"
	}
	b := bufio.NewWriterSize(w, 64<<10)
	enc := newEncoder(o.Format, b)
	if o.Format == CSV {
		if _, err := writeCSVHeader(b, baseColumns); err != nil {
			return 0, 0, err
		}
	}
	opts := Options{Poll: o.Poll, Format: o.Format}
	v := voters{key: o.Key}
	for bucket := range max(o.Buckets, 1) {
		if err := ctx.Err(); err != nil {
			return rows, orphans, err
		}
		began := time.Now()
		var n int64
		orph, err := src.Bucket(ctx, o.Poll, bucket, scan.DefaultConsistency, func(r vote.Ballot) error {
			if r.Revoked {
				return nil // revoked: not a ballot any more
			}
			rec := opts.record(v, r)
			rec.VotedAt = Coarsen(rec.VotedAt, o.Grain)
			n++
			return enc.encode(rec)
		})
		if err == nil {
			err = enc.flush() // the CSV writer's own buffer into b
		}
		if err == nil {
			err = b.Flush()
		}
		rows += n
		orphans += orph
		if m != nil {
			m.rows.WithLabelValues(label).Add(float64(n))
		}
		if err != nil {
			if m != nil {
				m.units.WithLabelValues(label, "failed").Inc()
			}
			return rows, orphans, fmt.Errorf("export bucket %d: %w", bucket, err)
		}
		if m != nil {
			m.units.WithLabelValues(label, "read").Inc()
			m.unitDur.WithLabelValues(label).Observe(time.Since(began).Seconds())
		}
		if flush != nil {
			flush()
		}
	}
	return rows, orphans, nil
}
