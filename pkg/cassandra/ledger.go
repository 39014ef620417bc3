package cassandra

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/scylladb/gocqlx/v2/qb"
	"golang.org/x/sync/errgroup"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/inclusion"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/tally"
)

// ledgerRow is what the ledger reads of an index row or a vote row: the
// ballot's vote id and commitment (024; null on ballots recorded before
// receipts), its version and whether it is revoked (026; null reads as 0
// and false), and, for a receipt, when it was recorded.
type ledgerRow struct {
	VoterID    id.ID     `db:"voter_id"`
	VoteID     id.ID     `db:"vote_id"`
	Commitment []byte    `db:"commitment"`
	VotedAt    time.Time `db:"voted_at"`
	Version    *int      `db:"version"`
	Revoked    *bool     `db:"revoked"`
}

func (r ledgerRow) version() int {
	if r.Version == nil {
		return 0
	}
	return *r.Version
}

func (r ledgerRow) revoked() bool { return r.Revoked != nil && *r.Revoked }

// agrees reports whether index row r and vote row v name the same current
// ballot state, as verify's row check does: same vote id, version and
// revoked, and, unless revoked, the same commitment (a revoke leaves the
// entry's commitment as it was; a revoked ballot has no leaf).
func (r ledgerRow) agrees(v *ledgerRow) bool {
	if v == nil || v.VoteID != r.VoteID || v.version() != r.version() || v.revoked() != r.revoked() {
		return false
	}
	return r.revoked() || bytes.Equal(v.Commitment, r.Commitment)
}

// entry is the row's ledger entry; uncommitted reports a ballot without a
// commitment, which gets the all-zero one.
func (r ledgerRow) entry() (e ledger.Entry, uncommitted bool) {
	e.VoteID = r.VoteID
	if len(r.Commitment) != ledger.HashSize {
		return e, true
	}
	copy(e.Commitment[:], r.Commitment)
	return e, false
}

var (
	// ledgerIndexRows lists one bucket of a poll's index as ledger rows.
	ledgerIndexRows = newStatement(votesByPollTable.Select("voter_id", "vote_id", "commitment", "voted_at", "version", "revoked"))
	// ledgerVoteRows reads the vote rows of some voters of one poll.
	ledgerVoteRows = newStatement(qb.Select(votesTable.Name()).Columns("voter_id", "vote_id", "commitment", "version", "revoked").
			Where(qb.Eq("poll_id"), qb.In("voter_id")).ToCql())
	// ballotByVoteID finds a ballot in one index partition through the
	// storage-attached index on vote_id (025).
	ballotByVoteID = newStatement(qb.Select(votesByPollTable.Name()).Columns("voter_id", "vote_id", "commitment", "voted_at", "version", "revoked").
			Where(qb.Eq("poll_id"), qb.Eq("bucket"), qb.Eq("vote_id")).ToCql())
)

// IndexLedger reads a poll's ledger entries from its per-poll index alone,
// for rebuilding a frozen ledger whose root is then checked against the
// signed one. Revoked ballots' entries have no leaf.
func (st *TallyStore) IndexLedger(ctx context.Context, pollID id.ID, buckets int) (tally.LedgerRead, error) {
	var out tally.LedgerRead
	for _, b := range shardList(buckets) {
		rows, err := st.indexBucket(ctx, pollID, b)
		if err != nil {
			return tally.LedgerRead{}, err
		}
		for _, r := range rows {
			if r.revoked() {
				continue
			}
			e, unc := r.entry()
			out.Entries = append(out.Entries, e)
			if unc {
				out.Uncommitted++
			}
		}
	}
	return out, nil
}

// LedgerEntries reads a poll's ledger entries through its per-poll index
// and checks each index row against its vote row, the truth, as `tally
// verify` does: a missing vote row, or one with another vote id, version,
// revoked state or (unless revoked) commitment, is counted in Mismatched
// and left out. A revoked ballot whose row agrees has no leaf. The
// entries carry the vote rows' commitments.
func (st *TallyStore) LedgerEntries(ctx context.Context, pollID id.ID, buckets int) (tally.LedgerRead, error) {
	var out tally.LedgerRead
	for _, b := range shardList(buckets) {
		rows, err := st.indexBucket(ctx, pollID, b)
		if err != nil {
			return tally.LedgerRead{}, err
		}
		truth, err := st.ledgerVoteRows(ctx, pollID, rows)
		if err != nil {
			return tally.LedgerRead{}, err
		}
		for i, r := range rows {
			v := truth[i]
			if !r.agrees(v) {
				out.Mismatched++
				continue
			}
			if v.revoked() {
				out.Revoked++
				continue
			}
			e, unc := v.entry()
			out.Entries = append(out.Entries, e)
			if unc {
				out.Uncommitted++
			}
		}
	}
	return out, nil
}

func (st *TallyStore) indexBucket(ctx context.Context, pollID id.ID, bucket int) ([]ledgerRow, error) {
	var rows []ledgerRow
	iter := ledgerIndexRows.query(ctx, st.s).BindStruct(voteIndexRow{PollID: pollID, Bucket: bucket}).PageSize(5000).Iter()
	var r ledgerRow
	for iter.StructScan(&r) {
		rows = append(rows, r)
		r = ledgerRow{}
	}
	if err := iter.Close(); err != nil {
		return nil, apperr.Unavailable(fmt.Sprintf("read ledger of index bucket %d", bucket), err)
	}
	return rows, nil
}

// ledgerVoteRows reads the vote rows of the voters rows name, in their
// order (nil where there is none), pollRowsPerRead voters a query.
func (st *TallyStore) ledgerVoteRows(ctx context.Context, pollID id.ID, rows []ledgerRow) ([]*ledgerRow, error) {
	out := make([]*ledgerRow, len(rows))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pollRowReads)
	for lo := 0; lo < len(rows); lo += pollRowsPerRead {
		chunk := rows[lo:min(lo+pollRowsPerRead, len(rows))]
		g.Go(func() error {
			voters := make([]id.ID, len(chunk))
			for i, r := range chunk {
				voters[i] = r.VoterID
			}
			iter := ledgerVoteRows.query(gctx, st.s).BindMap(qb.M{"poll_id": pollID, "voter_id": voters}).Iter()
			found := make(map[id.ID]ledgerRow, len(chunk))
			var r ledgerRow
			for iter.StructScan(&r) {
				found[r.VoterID] = r
				r = ledgerRow{}
			}
			if err := iter.Close(); err != nil {
				return apperr.Unavailable("read vote rows for the ledger", err)
			}
			for i, v := range voters {
				if r, ok := found[v]; ok {
					out[lo+i] = &r
				}
			}
			return nil
		})
	}
	return out, g.Wait()
}

// FindBallot finds a poll's ballot by its vote id, asking every index
// partition of the poll at once through the storage-attached index on
// vote_id; found is false when no ballot has that id. The entry is the
// ballot's current version, revoked or not (a change keeps the vote id).
func (st *TallyStore) FindBallot(ctx context.Context, pollID id.ID, buckets int, voteID id.ID) (inclusion.Ballot, bool, error) {
	hits := make([]*ledgerRow, max(buckets, 1))
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range shardList(buckets) {
		g.Go(func() error {
			var r ledgerRow
			iter := ballotByVoteID.query(gctx, st.s).BindMap(qb.M{"poll_id": pollID, "bucket": b, "vote_id": voteID}).Iter()
			if iter.StructScan(&r) {
				hits[b] = &r
			}
			if err := iter.Close(); err != nil {
				return apperr.Unavailable("find ballot by vote id", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return inclusion.Ballot{}, false, err
	}
	for _, r := range hits {
		if r != nil {
			return inclusion.Ballot{VoteID: r.VoteID, Commitment: r.Commitment, VotedAt: r.VotedAt, Version: r.version(),
				Revoked: r.revoked()}, true, nil
		}
	}
	return inclusion.Ballot{}, false, nil
}
