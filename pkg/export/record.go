package export

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/vote"
)

// Record is one exported vote row. Voter is the pseudonym of the voter id
// (64 hex digits) or, with real ids, the id itself. IP and UserAgent are
// nil when their columns are left out.
type Record struct {
	PollID    string   `json:"poll_id"`
	Voter     string   `json:"voter"`
	VoteID    string   `json:"vote_id"`
	OptionIDs []string `json:"option_ids"`
	// Scores are a score ballot's scores, Scores[i] for OptionIDs[i]
	// (absent, or empty, on other methods).
	Scores    []int     `json:"scores,omitempty"`
	VotedAt   time.Time `json:"voted_at"`
	Anonymous bool      `json:"anonymous"`
	// Commitment is the ballot's receipt commitment, base64url without
	// padding ("" for a ballot recorded before receipts, whose ledger leaf
	// has 32 zero bytes): with VoteID, what `tally verify --ledger`
	// rebuilds the poll's ledger from. Never a salt.
	Commitment string  `json:"commitment"`
	IP         *string `json:"ip,omitempty"`
	UserAgent  *string `json:"user_agent,omitempty"`
}

// baseColumns are the columns every export has, in CSV order.
var baseColumns = []string{"poll_id", "voter", "vote_id", "option_ids", "voted_at", "anonymous", "scores", "commitment"}

// columns are an export's columns.
func (o Options) columns() []string {
	cols := append([]string(nil), baseColumns...)
	if o.IncludeIP {
		cols = append(cols, "ip")
	}
	if o.IncludeUserAgent {
		cols = append(cols, "user_agent")
	}
	return cols
}

// voters turns voter ids into what an export writes.
type voters struct {
	key  []byte
	real bool
}

// Pseudonym is the keyed hash of a voter id: hex HMAC-SHA256 of its 16
// bytes. The same key gives the same pseudonym in every poll and run.
func Pseudonym(key []byte, voter id.ID) string {
	m := hmac.New(sha256.New, key)
	m.Write(voter[:])
	return hex.EncodeToString(m.Sum(nil))
}

func (v voters) id(voter id.ID) string {
	if v.real {
		return voter.String()
	}
	return Pseudonym(v.key, voter)
}

// keyCheck names the key in a checkpoint without revealing it, so that a
// resumed run refuses a different key (its pseudonyms would not join).
func (v voters) keyCheck() string {
	if v.real {
		return "real-voter-ids"
	}
	m := hmac.New(sha256.New, v.key)
	m.Write([]byte("tally export checkpoint"))
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// record builds the exported record of a row.
func (o Options) record(v voters, r vote.Ballot) Record {
	rec := Record{PollID: r.PollID.String(), Voter: v.id(r.VoterID), VoteID: r.VoteID.String(),
		OptionIDs: make([]string, len(r.OptionIDs)), Scores: r.Scores, VotedAt: r.VotedAt.UTC(), Anonymous: r.Anonymous,
		Commitment: base64.RawURLEncoding.EncodeToString(r.Commitment)}
	for i, id := range r.OptionIDs {
		rec.OptionIDs[i] = id.String()
	}
	if o.IncludeIP {
		rec.IP = &r.IP
	}
	if o.IncludeUserAgent {
		rec.UserAgent = &r.UserAgent
	}
	return rec
}

// timeLayout is voted_at in CSV: UTC, milliseconds (Cassandra's precision).
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// csvFields is a record as a CSV line; option ids are joined by ';', and
// so are a score ballot's scores (empty on other ballots).
func csvFields(r Record) []string {
	scores := make([]string, len(r.Scores))
	for i, s := range r.Scores {
		scores[i] = strconv.Itoa(s)
	}
	f := []string{r.PollID, r.Voter, r.VoteID, strings.Join(r.OptionIDs, ";"), r.VotedAt.Format(timeLayout),
		strconv.FormatBool(r.Anonymous), strings.Join(scores, ";"), r.Commitment}
	if r.IP != nil {
		f = append(f, *r.IP)
	}
	if r.UserAgent != nil {
		f = append(f, *r.UserAgent)
	}
	return f
}

// encoder writes records to one unit's part. Parquet parts are JSON Lines,
// turned into Parquet once every unit is done.
type encoder interface {
	encode(Record) error
	flush() error
}

type csvEncoder struct{ w *csv.Writer }

func (e csvEncoder) encode(r Record) error { return e.w.Write(csvFields(r)) }
func (e csvEncoder) flush() error          { e.w.Flush(); return e.w.Error() }

type jsonEncoder struct {
	b   *bufio.Writer
	enc *json.Encoder
}

func (e jsonEncoder) encode(r Record) error { return e.enc.Encode(r) }
func (e jsonEncoder) flush() error          { return e.b.Flush() }

func newEncoder(f Format, w io.Writer) encoder {
	if f == CSV {
		return csvEncoder{w: csv.NewWriter(w)}
	}
	b := bufio.NewWriterSize(w, 64<<10)
	return jsonEncoder{b: b, enc: json.NewEncoder(b)}
}

// writeCSVHeader writes the header line of a CSV export.
func writeCSVHeader(w io.Writer, cols []string) (int64, error) {
	var sb strings.Builder
	cw := csv.NewWriter(&sb)
	_ = cw.Write(cols)
	cw.Flush()
	n, err := io.WriteString(w, sb.String())
	return int64(n), err
}

// The Parquet row types: one per choice of optional columns, so a left-out
// column is absent from the file's schema, not a column of nulls.
type (
	pqRow struct {
		PollID     string    `parquet:"poll_id"`
		Voter      string    `parquet:"voter"`
		VoteID     string    `parquet:"vote_id"`
		OptionIDs  []string  `parquet:"option_ids,list"`
		VotedAt    time.Time `parquet:"voted_at,timestamp(millisecond)"`
		Anonymous  bool      `parquet:"anonymous"`
		Scores     []int32   `parquet:"scores,list"`
		Commitment string    `parquet:"commitment"`
	}
	pqRowIP struct {
		pqRow
		IP string `parquet:"ip"`
	}
	pqRowUA struct {
		pqRow
		UserAgent string `parquet:"user_agent"`
	}
	pqRowIPUA struct {
		pqRow
		IP        string `parquet:"ip"`
		UserAgent string `parquet:"user_agent"`
	}
)

func toPQ(r Record) pqRow {
	row := pqRow{PollID: r.PollID, Voter: r.Voter, VoteID: r.VoteID, OptionIDs: r.OptionIDs, VotedAt: r.VotedAt,
		Anonymous: r.Anonymous, Commitment: r.Commitment}
	if len(r.Scores) > 0 {
		row.Scores = make([]int32, len(r.Scores))
		for i, s := range r.Scores {
			row.Scores[i] = int32(s)
		}
	}
	return row
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// writeParquet turns a JSON Lines spool of records into a Parquet file.
func writeParquet(w io.Writer, spool io.Reader, o Options) error {
	switch {
	case o.IncludeIP && o.IncludeUserAgent:
		return convertParquet(w, spool, func(r Record) pqRowIPUA {
			return pqRowIPUA{pqRow: toPQ(r), IP: deref(r.IP), UserAgent: deref(r.UserAgent)}
		})
	case o.IncludeIP:
		return convertParquet(w, spool, func(r Record) pqRowIP { return pqRowIP{pqRow: toPQ(r), IP: deref(r.IP)} })
	case o.IncludeUserAgent:
		return convertParquet(w, spool, func(r Record) pqRowUA {
			return pqRowUA{pqRow: toPQ(r), UserAgent: deref(r.UserAgent)}
		})
	}
	return convertParquet(w, spool, toPQ)
}

// parquetBatch is how many rows are handed to the Parquet writer at once.
const parquetBatch = 4096

func convertParquet[T any](w io.Writer, spool io.Reader, conv func(Record) T) error {
	pw := parquet.NewGenericWriter[T](w, parquet.Compression(&parquet.Snappy))
	dec := json.NewDecoder(bufio.NewReaderSize(spool, 256<<10))
	batch := make([]T, 0, parquetBatch)
	write := func() error {
		if _, err := pw.Write(batch); err != nil {
			return fmt.Errorf("write parquet rows: %w", err)
		}
		batch = batch[:0]
		return nil
	}
	for {
		var r Record
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read spool: %w", err)
		}
		if batch = append(batch, conv(r)); len(batch) == parquetBatch {
			if err := write(); err != nil {
				return err
			}
		}
	}
	if err := write(); err != nil {
		return err
	}
	return pw.Close()
}

// ReadParquet reads an export's Parquet file back into records, and the
// file's columns; IP and UserAgent are set only where the file has them.
func ReadParquet(path string) ([]Record, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return nil, nil, err
	}
	var cols []string
	for _, fld := range pf.Schema().Fields() {
		cols = append(cols, fld.Name())
	}
	rows, err := parquet.Read[pqRowIPUA](f, st.Size())
	if err != nil {
		return nil, nil, err
	}
	out := make([]Record, len(rows))
	for i, r := range rows {
		out[i] = Record{PollID: r.PollID, Voter: r.Voter, VoteID: r.VoteID, OptionIDs: r.OptionIDs,
			VotedAt: r.VotedAt.UTC(), Anonymous: r.Anonymous, Commitment: r.Commitment}
		for _, s := range r.Scores {
			out[i].Scores = append(out[i].Scores, int(s))
		}
		if slices.Contains(cols, "ip") {
			out[i].IP = &rows[i].IP
		}
		if slices.Contains(cols, "user_agent") {
			out[i].UserAgent = &rows[i].UserAgent
		}
	}
	return out, cols, nil
}
