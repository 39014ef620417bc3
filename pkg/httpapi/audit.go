package httpapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// AuditReader reads a poll's owner-action chain (pkg/audit's Log).
type AuditReader interface {
	Page(ctx context.Context, pollID id.ID, afterSeq int64, limit int) ([]audit.Entry, audit.Head, error)
}

// Paging of GET /v1/polls/{poll_id}/audit.
const (
	auditDefaultLimit = 100
	auditMaxLimit     = 1000
)

type auditEntryResponse struct {
	Seq      int64           `json:"seq"`
	At       time.Time       `json:"at"`
	Event    string          `json:"event"`
	ActorID  string          `json:"actor_id"`
	Detail   json.RawMessage `json:"detail"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

type auditHeadResponse struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

type auditLogResponse struct {
	PollID  string               `json:"poll_id"`
	Entries []auditEntryResponse `json:"entries"`
	// Head is the chain's last entry when the page was read; null for a
	// poll whose chain is empty.
	Head *auditHeadResponse `json:"head"`
	// NextAfterSeq is the after_seq of the next page; absent on the last.
	NextAfterSeq *int64 `json:"next_after_seq,omitempty"`
}

// auditLog answers GET /v1/polls/{poll_id}/audit: the poll's owner-action
// chain, to its owner alone (anyone else: 403 NOT_POLL_OWNER, as the other
// owner routes), in seq order from after_seq, with the chain's head, so the
// owner can verify the chain (pkg/audit.Verify) and keep the head.
func (h *handlers) auditLog(c *gin.Context) {
	p := h.pathPoll(c)
	if p == nil {
		return
	}
	caller, _ := principal(c)
	if caller.UserID != p.CreatorID {
		abort(c, poll.ErrNotOwner)
		return
	}
	limit, err := queryInt(c, "limit", auditDefaultLimit, 1, auditMaxLimit)
	if err != nil {
		abort(c, err)
		return
	}
	after, err := queryInt(c, "after_seq", 0, 0, 1<<62)
	if err != nil {
		abort(c, err)
		return
	}
	if h.audit == nil {
		abort(c, apperr.ErrUnavailable)
		return
	}
	entries, head, err := h.audit.Page(c.Request.Context(), p.ID, after, int(limit))
	if err != nil {
		abort(c, err)
		return
	}
	resp := auditLogResponse{PollID: p.ID.String(), Entries: make([]auditEntryResponse, len(entries))}
	for i, e := range entries {
		resp.Entries[i] = toAuditEntry(e)
	}
	if head.Seq > 0 {
		resp.Head = &auditHeadResponse{Seq: head.Seq, Hash: hex.EncodeToString(head.Hash)}
	}
	if n := len(entries); n == int(limit) && entries[n-1].Seq < head.Seq {
		next := entries[n-1].Seq
		resp.NextAfterSeq = &next
	}
	c.JSON(http.StatusOK, resp)
}

// toAuditEntry is an entry on the wire, hashes in hex. A stored detail
// that is not a JSON object (edited by hand) is shown as {"raw": text}, so
// the page still answers and the entry fails verification.
func toAuditEntry(e audit.Entry) auditEntryResponse {
	detail := json.RawMessage(e.Detail)
	var obj map[string]json.RawMessage
	if json.Unmarshal(e.Detail, &obj) != nil || obj == nil {
		detail, _ = json.Marshal(map[string]string{"raw": string(e.Detail)})
	}
	return auditEntryResponse{Seq: e.Seq, At: e.At, Event: e.Kind, ActorID: e.ActorID.String(), Detail: detail,
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash)}
}

// queryInt reads an optional integer query parameter within [lo, hi]; an
// absent or empty one is def.
func queryInt(c *gin.Context, name string, def, lo, hi int64) (int64, error) {
	s := c.Query(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, apperr.Invalid(name, "must be an integer from %d to %d", lo, hi)
	}
	return n, nil
}
