package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/vote"
)

// checkpointVersion is the checkpoint format's version.
const checkpointVersion = 1

// sink is where committed units' rows go: the partial output file (with a
// checkpoint) or standard output. commit is called by one goroutine at a
// time.
type sink struct {
	w    io.Writer
	file *os.File // the partial output, or a temporary spool for Parquet to stdout
	off  int64
	ckpt *checkpoint
}

// commit appends a unit's part and, for a file, syncs it and records the
// unit in the checkpoint: a unit's rows are in the output exactly when its
// checkpoint line is, up to a tail a resumed run cuts off.
func (s *sink) commit(unit int, part *os.File, rows int64) (int64, error) {
	if _, err := part.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(s.w, part)
	if err != nil {
		return n, fmt.Errorf("append rows: %w", err)
	}
	s.off += n
	if s.file != nil {
		if err := s.file.Sync(); err != nil {
			return n, fmt.Errorf("sync output: %w", err)
		}
	}
	if s.ckpt != nil {
		return n, s.ckpt.commit(unit, s.off, rows)
	}
	return n, nil
}

// Run exports what o selects. A file export that is interrupted (an error,
// a cancelled ctx) leaves its partial output and checkpoint for a run with
// Resume; one that finishes renames the partial output to Out (converting
// it to Parquet first) and removes the checkpoint.
func Run(ctx context.Context, d Deps, o Options) (Report, error) {
	if err := o.Validate(); err != nil {
		return Report{}, err
	}
	if o.Workers <= 0 {
		o.Workers = defaultWorkers
	}
	start := d.Now()
	v := voters{key: o.PseudonymKey, real: o.RealVoterIDs}
	source, units, err := plan(ctx, d, o)
	if err != nil {
		return Report{}, err
	}
	want := header{Version: checkpointVersion, Source: source, Format: o.Format, Columns: o.columns(),
		KeyCheck: v.keyCheck(), Units: units}
	rep := Report{Source: source, Format: o.Format, Out: o.Out}

	s, cleanup, err := openSink(d, o, &want)
	if err != nil {
		return rep, err
	}
	defer cleanup()
	units = want.Units
	rep.Units = len(units)
	if s.ckpt != nil {
		rep.Resumed, rep.Rows = len(s.ckpt.done), s.ckpt.rows
	}
	log := d.Log.With(zap.String("source", sourceLabel(o)))
	log.Info("export started", zap.String("format", string(o.Format)), zap.Int("units", len(units)),
		zap.Int("resumed", rep.Resumed), zap.Stringer("consistency", o.Consistency),
		zap.Bool("real_voter_ids", o.RealVoterIDs), zap.Bool("ip", o.IncludeIP), zap.Bool("user_agent", o.IncludeUserAgent))
	if d.Metrics != nil {
		d.Metrics.units.WithLabelValues(sourceLabel(o), "resumed").Add(float64(rep.Resumed))
	}

	if err := readUnits(ctx, d, o, v, units, s, &rep); err != nil {
		rep.DurationMS = d.Now().Sub(start).Milliseconds()
		if s.ckpt != nil {
			log.Warn("export interrupted; rerun with --resume to continue", zap.Error(err),
				zap.String("checkpoint", o.CheckpointPath()), zap.Int64("rows", rep.Rows))
		}
		return rep, err
	}
	if err := finish(d, o, s); err != nil {
		return rep, err
	}
	rep.DurationMS = d.Now().Sub(start).Milliseconds()
	log.Info("export finished", zap.Int64("rows", rep.Rows), zap.Int("units", rep.Units), zap.Int64("orphans", rep.Orphans),
		zap.Int64("bytes", rep.Bytes), zap.Int64("duration_ms", rep.DurationMS))
	return rep, nil
}

// sourceLabel is the bounded metric label of an export's source.
func sourceLabel(o Options) string {
	if o.Poll == (id.ID{}) {
		return "table"
	}
	return "poll"
}

// plan names the source and cuts it into units: the poll's index buckets,
// or the table's token ranges.
func plan(ctx context.Context, d Deps, o Options) (string, []Unit, error) {
	if o.Poll != (id.ID{}) {
		n, err := d.Source.Buckets(ctx, o.Poll)
		if err != nil {
			return "", nil, err
		}
		units := make([]Unit, max(n, 1))
		for i := range units {
			units[i] = Unit{Bucket: &i}
		}
		return "poll " + o.Poll.String(), units, nil
	}
	ranges := d.Source.Plan(ctx, o.Splits)
	units := make([]Unit, len(ranges))
	for i := range ranges {
		units[i] = Unit{Range: &ranges[i]}
	}
	return "votes", units, nil
}

// openSink prepares where rows go. A resumed file export takes its units
// from the checkpoint (so a changed ring cannot change them) and cuts the
// partial output back to what the checkpoint committed.
func openSink(d Deps, o Options, h *header) (*sink, func(), error) {
	if o.toStdout() {
		if o.Format != Parquet {
			s := &sink{w: d.Stdout}
			if o.Format == CSV {
				if _, err := writeCSVHeader(d.Stdout, h.Columns); err != nil {
					return nil, nil, err
				}
			}
			return s, func() {}, nil
		}
		// Parquet needs every row before its footer: spool, then convert.
		f, err := os.CreateTemp("", "tally-export-*.jsonl")
		if err != nil {
			return nil, nil, err
		}
		return &sink{w: f, file: f}, func() { _ = f.Close(); _ = os.Remove(f.Name()) }, nil
	}

	ckPath, partial := o.CheckpointPath(), o.partialPath()
	left, err := exists(ckPath)
	if err != nil {
		return nil, nil, err
	}
	var (
		ck *checkpoint
		f  *os.File
	)
	switch {
	case left && !o.Resume:
		return nil, nil, fmt.Errorf("%w: %s (pass --resume to continue it, or delete it and %s)", ErrCheckpointLeft, ckPath, partial)
	case left:
		if ck, err = openCheckpoint(ckPath); err != nil {
			return nil, nil, err
		}
		if err := ck.head.matches(*h); err != nil {
			_ = ck.close()
			return nil, nil, err
		}
		h.Units, h.Start = ck.head.Units, ck.head.Start
		if f, err = os.OpenFile(partial, os.O_WRONLY, 0o644); err != nil {
			_ = ck.close()
			return nil, nil, fmt.Errorf("resume: %w", err)
		}
		// Rows appended after the last checkpoint line belong to a unit
		// that was not committed; it is read again.
		if err := f.Truncate(ck.end); err != nil {
			return nil, nil, err
		}
		if _, err := f.Seek(ck.end, io.SeekStart); err != nil {
			return nil, nil, err
		}
		d.Log.Info("resuming export", zap.Int("units_done", len(ck.done)), zap.Int64("rows_done", ck.rows))
	default:
		if o.Resume {
			d.Log.Info("no checkpoint to resume; starting afresh", zap.String("checkpoint", ckPath))
		}
		if f, err = os.Create(partial); err != nil {
			return nil, nil, err
		}
		if o.Format == CSV {
			if h.Start, err = writeCSVHeader(f, h.Columns); err != nil {
				return nil, nil, err
			}
		}
		if ck, err = createCheckpoint(ckPath, *h); err != nil {
			return nil, nil, err
		}
	}
	return &sink{w: f, file: f, off: ck.end, ckpt: ck}, func() { _ = f.Close(); _ = ck.close() }, nil
}

// readUnits reads the units not done yet, a bounded number at once, each
// into a part file that is appended to the sink whole.
func readUnits(ctx context.Context, d Deps, o Options, v voters, units []Unit, s *sink, rep *Report) error {
	// The units done before this run; commits add to the checkpoint's own
	// set while the loop below reads this copy.
	done := map[int]bool{}
	if s.ckpt != nil {
		maps.Copy(done, s.ckpt.done)
	}
	partDir := os.TempDir()
	if !o.toStdout() {
		partDir = filepath.Dir(o.Out)
	}
	var mu sync.Mutex // guards s, rep and the progress count
	finished := len(done)
	if o.Progress != nil {
		o.Progress(finished, len(units))
	}
	label := sourceLabel(o)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Workers)
	for i, u := range units {
		if done[i] {
			continue
		}
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			began := time.Now()
			part, rows, orphans, err := readUnit(gctx, d, o, v, u, partDir)
			if part != nil {
				defer func() { _ = part.Close(); _ = os.Remove(part.Name()) }()
			}
			if err != nil {
				if d.Metrics != nil {
					d.Metrics.units.WithLabelValues(label, "failed").Inc()
				}
				return fmt.Errorf("export %s: %w", u, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if gctx.Err() != nil {
				return gctx.Err() // stopping: commit nothing more
			}
			n, err := s.commit(i, part, rows)
			if err != nil {
				return err
			}
			rep.Rows += rows
			rep.Orphans += orphans
			rep.Bytes += n
			finished++
			if d.Metrics != nil {
				d.Metrics.rows.WithLabelValues(label).Add(float64(rows))
				d.Metrics.units.WithLabelValues(label, "read").Inc()
				d.Metrics.unitDur.WithLabelValues(label).Observe(time.Since(began).Seconds())
				d.Metrics.bytes.Add(float64(n))
			}
			if o.Progress != nil {
				o.Progress(finished, len(units))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// readUnit reads one unit's rows into a new part file.
func readUnit(ctx context.Context, d Deps, o Options, v voters, u Unit, dir string) (*os.File, int64, int64, error) {
	part, err := os.CreateTemp(dir, ".tally-export-part-*")
	if err != nil {
		return nil, 0, 0, err
	}
	format := o.Format
	if format == Parquet {
		format = JSONL // the spool's format
	}
	enc := newEncoder(format, part)
	var rows, orphans int64
	fn := func(r vote.Ballot) error {
		if r.Revoked {
			return nil // revoked: not a ballot any more
		}
		rows++
		return enc.encode(o.record(v, r))
	}
	cons := o.Consistency
	if u.Range != nil {
		err = d.Source.Range(ctx, *u.Range, cons, fn)
	} else {
		orphans, err = d.Source.Bucket(ctx, o.Poll, *u.Bucket, cons, fn)
	}
	if err == nil {
		err = enc.flush()
	}
	return part, rows, orphans, err
}

// finish turns the committed output into the result: the Parquet file from
// its spool, the renamed partial file; and removes the checkpoint.
func finish(d Deps, o Options, s *sink) error {
	if o.toStdout() {
		if o.Format != Parquet {
			return nil
		}
		if _, err := s.file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		return writeParquet(d.Stdout, s.file, o)
	}
	if err := s.file.Close(); err != nil {
		return err
	}
	if o.Format == Parquet {
		if err := toParquetFile(o); err != nil {
			return err
		}
	} else if err := os.Rename(o.partialPath(), o.Out); err != nil {
		return err
	}
	_ = s.ckpt.close()
	if err := os.Remove(o.CheckpointPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// toParquetFile converts the partial JSON Lines spool into Out, through a
// temporary file so Out is only ever a whole Parquet file.
func toParquetFile(o Options) error {
	spool, err := os.Open(o.partialPath())
	if err != nil {
		return err
	}
	defer spool.Close()
	tmp := o.Out + ".parquet-tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := writeParquet(out, spool, o); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.Out); err != nil {
		return err
	}
	return os.Remove(o.partialPath())
}
