package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"
	"golang.org/x/sync/errgroup"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
)

// InviteStore implements anonaccess.Store: the keyed hashes of invite
// codes in poll_invites, and the count of their voters' ballots in votes.
type InviteStore struct {
	s gocqlx.Session
}

// NewInviteStore builds the store.
func NewInviteStore(s gocqlx.Session) *InviteStore { return &InviteStore{s: s} }

var (
	insertInvite = newStatement(pollInvitesTable.Insert())
	selectInvite = newStatement(pollInvitesTable.Get("code_hash"))
	countInvites = newStatement(qb.Select(pollInvitesTable.Name()).CountAll().Where(qb.Eq("poll_id")).ToCql())
	listInvites  = newStatement(pollInvitesTable.Select("code_hash"))
	// votersByKeys reads which of some voters of one poll have a ballot.
	votersByKeys = newStatement(qb.Select(votesTable.Name()).Columns("voter_id").
			Where(qb.Eq("poll_id"), qb.In("voter_id")).ToCql())
)

const (
	// invitesPerBatch keeps a mint's unlogged single-partition batches
	// (about 60 bytes a row) under Cassandra's batch size warning (5 KiB).
	invitesPerBatch = 50
	// inviteBatches is how many of a mint's batches are written at once.
	inviteBatches = 4
)

// AddInvites writes the hashes into the poll's partition, invitesPerBatch
// rows to an unlogged batch (one partition: one mutation, no batch log).
// A failure may leave some written: their codes were never shown, and
// nobody can vote with a code they do not have.
func (st *InviteStore) AddInvites(ctx context.Context, pollID id.ID, hashes [][]byte, at time.Time) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(inviteBatches)
	for lo := 0; lo < len(hashes); lo += invitesPerBatch {
		chunk := hashes[lo:min(lo+invitesPerBatch, len(hashes))]
		g.Go(func() error {
			b := newBatch(gctx, st.s, gocql.UnloggedBatch)
			for _, h := range chunk {
				b.add(insertInvite, inviteRow{PollID: pollID, CodeHash: h, CreatedAt: at})
			}
			if err := b.exec(st.s); err != nil {
				return apperr.Unavailable("insert invites", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// InviteExists reads one code's row.
func (st *InviteStore) InviteExists(ctx context.Context, pollID id.ID, hash []byte) (bool, error) {
	var got []byte
	err := selectInvite.query(ctx, st.s).BindStruct(inviteRow{PollID: pollID, CodeHash: hash}).GetRelease(&got)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return false, nil
	case err != nil:
		return false, apperr.Unavailable("read invite", err)
	}
	return true, nil
}

// CountInvites counts the poll's rows.
func (st *InviteStore) CountInvites(ctx context.Context, pollID id.ID) (int, error) {
	var n int64
	if err := countInvites.query(ctx, st.s).BindMap(qb.M{"poll_id": pollID}).GetRelease(&n); err != nil {
		return 0, apperr.Unavailable("count invites", err)
	}
	return int(n), nil
}

// EachInvitePage pages through the poll's hashes.
func (st *InviteStore) EachInvitePage(ctx context.Context, pollID id.ID, fn func(hashes [][]byte) error) error {
	q := listInvites.query(ctx, st.s).BindMap(qb.M{"poll_id": pollID})
	defer q.Release()
	var state []byte
	for {
		hashes, next, err := readPage(ctx, "list invites", q, state, func(r inviteRow) []byte { return r.CodeHash })
		if err != nil {
			return err
		}
		if len(hashes) > 0 {
			if err := fn(hashes); err != nil {
				return err
			}
		}
		if len(next) == 0 {
			return nil
		}
		state = next
	}
}

// CountBallots counts the voters that have a row in votes, reading
// pollRowsPerRead partitions a query (poll_id bound, voter_id IN a list)
// and pollRowReads queries at once.
func (st *InviteStore) CountBallots(ctx context.Context, pollID id.ID, voters []id.ID) (int, error) {
	counts := make([]int, (len(voters)+pollRowsPerRead-1)/pollRowsPerRead)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pollRowReads)
	for i := range counts {
		chunk := voters[i*pollRowsPerRead : min((i+1)*pollRowsPerRead, len(voters))]
		g.Go(func() error {
			q := votersByKeys.query(gctx, st.s).BindMap(qb.M{"poll_id": pollID, "voter_id": chunk})
			defer q.Release()
			var state []byte
			for {
				rows, next, err := readPage(gctx, "read voters", q, state, func(r voteRow) id.ID { return r.VoterID })
				if err != nil {
					return err
				}
				counts[i] += len(rows)
				if len(next) == 0 {
					return nil
				}
				state = next
			}
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	return n, nil
}
