package export

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/tally-vote/tally/pkg/scan"
)

// Unit is what an export reads and commits at once: a token range of the
// votes table, or a bucket of a poll's index.
type Unit struct {
	Range  *scan.Range `json:"range,omitempty"`
	Bucket *int        `json:"bucket,omitempty"`
}

func (u Unit) String() string {
	if u.Range != nil {
		return "tokens " + u.Range.String()
	}
	return fmt.Sprintf("bucket %d", *u.Bucket)
}

// header is a checkpoint's first line: what the export is, so a resumed run
// continues the same one, and the units it planned.
type header struct {
	Version  int      `json:"version"`
	Source   string   `json:"source"`
	Format   Format   `json:"format"`
	Columns  []string `json:"columns"`
	KeyCheck string   `json:"key_check"`
	// Start is where rows begin in the partial output (after a CSV header).
	Start int64  `json:"start"`
	Units []Unit `json:"units"`
}

// doneLine is a checkpoint line per committed unit: the partial output's
// length once its rows were appended, and how many there were.
type doneLine struct {
	Unit int   `json:"unit"`
	End  int64 `json:"end"`
	Rows int64 `json:"rows"`
}

// checkpoint is the append-only checkpoint file of a file export.
type checkpoint struct {
	f    *os.File
	head header
	done map[int]bool
	end  int64 // the partial output's committed length
	rows int64 // rows committed so far
}

// createCheckpoint writes a new checkpoint with its header.
func createCheckpoint(path string, h header) (*checkpoint, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	c := &checkpoint{f: f, head: h, done: map[int]bool{}, end: h.Start}
	if err := c.append(h); err != nil {
		_ = f.Close()
		return nil, err
	}
	return c, nil
}

// openCheckpoint reads a checkpoint left by an interrupted run. A last line
// cut short by the interruption is dropped from the file.
func openCheckpoint(path string) (*checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &checkpoint{done: map[int]bool{}}
	var valid int64
	for i := 0; len(data[valid:]) > 0; i++ {
		nl := bytes.IndexByte(data[valid:], '\n')
		if nl < 0 {
			break // cut short: no newline
		}
		line := data[valid : valid+int64(nl)]
		if i == 0 {
			if err := json.Unmarshal(line, &c.head); err != nil {
				return nil, fmt.Errorf("%w: header: %v", ErrCheckpoint, err)
			}
			c.end = c.head.Start
		} else {
			var d doneLine
			if json.Unmarshal(line, &d) != nil || d.Unit < 0 || d.Unit >= len(c.head.Units) {
				break // cut short mid-line
			}
			c.done[d.Unit] = true
			c.end, c.rows = max(c.end, d.End), c.rows+d.Rows
		}
		valid += int64(nl) + 1
	}
	if c.head.Version == 0 {
		return nil, fmt.Errorf("%w: %s has no header", ErrCheckpoint, path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(valid); err != nil {
		_ = f.Close()
		return nil, err
	}
	if _, err := f.Seek(valid, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, err
	}
	c.f = f
	return c, nil
}

// matches says why h cannot be resumed as want, or nil.
func (h header) matches(want header) error {
	switch {
	case h.Version != want.Version:
		return fmt.Errorf("%w: version %d, want %d", ErrCheckpoint, h.Version, want.Version)
	case h.Source != want.Source:
		return fmt.Errorf("%w: it exports %s, not %s", ErrCheckpoint, h.Source, want.Source)
	case h.Format != want.Format:
		return fmt.Errorf("%w: format %s, not %s", ErrCheckpoint, h.Format, want.Format)
	case !slices.Equal(h.Columns, want.Columns):
		return fmt.Errorf("%w: columns %v, not %v", ErrCheckpoint, h.Columns, want.Columns)
	case h.KeyCheck != want.KeyCheck:
		return fmt.Errorf("%w: it was written with another pseudonym key (or with real voter ids)", ErrCheckpoint)
	}
	return nil
}

// commit records a unit whose rows now end the partial output at end.
func (c *checkpoint) commit(unit int, end, rows int64) error {
	if err := c.append(doneLine{Unit: unit, End: end, Rows: rows}); err != nil {
		return err
	}
	c.done[unit], c.end, c.rows = true, end, c.rows+rows
	return nil
}

// append writes one JSON line and syncs it.
func (c *checkpoint) append(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(c.f)
	_, _ = w.Write(b)
	_ = w.WriteByte('\n')
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return c.f.Sync()
}

func (c *checkpoint) close() error {
	if c == nil || c.f == nil {
		return nil
	}
	return c.f.Close()
}

// exists reports whether path exists.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
