package httpapi

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/anonaccess"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// TestOpenAPIAnonymousAccess pins what the document says of invite codes
// and challenges to pkg/anonaccess: the mint's bounds, the header names, and
// patterns that the codes and challenges the server makes really match.
func TestOpenAPIAnonymousAccess(t *testing.T) {
	doc := loadContract(t)
	count := doc.Components.Schemas["InviteMint"].Value.Properties["count"].Value
	if count.Min == nil || *count.Min != 1 || count.Max == nil || *count.Max != anonaccess.MaxMint {
		t.Errorf("InviteMint.count is %v to %v, want 1 to %d", count.Min, count.Max, anonaccess.MaxMint)
	}
	for name, header := range map[string]string{"InviteCode": anonaccess.InviteHeader, "ProofOfWork": anonaccess.PoWHeader} {
		p := doc.Components.Parameters[name]
		if p == nil || p.Value.Name != header || p.Value.In != "header" || p.Value.Required {
			t.Errorf("parameter %s does not describe the optional header %s", name, header)
		}
	}
	for path, params := range map[string][]string{
		"/v1/polls/{poll_id}/votes":                       {"InviteCode", "ProofOfWork"},
		"/v1/polls/{poll_id}/votes/me":                    {"InviteCode", "ProofOfWork"},
		"/v1/polls/{poll_id}/votes/requests/{request_id}": {"InviteCode", "ProofOfWork"},
		"/v1/polls/{poll_id}/results":                     {"InviteCode", "ProofOfWork"},
	} {
		for _, name := range params {
			op := doc.Paths.Value(path).Get
			if op == nil {
				op = doc.Paths.Value(path).Post
			}
			found := false
			for _, ref := range op.Parameters {
				found = found || ref.Ref == "#/components/parameters/"+name
			}
			if !found {
				t.Errorf("%s does not list %s", path, name)
			}
		}
	}

	codes := regexp.MustCompile(doc.Components.Schemas["InviteCodes"].Value.Properties["codes"].Value.Items.Value.Pattern)
	chal := doc.Components.Schemas["PoWChallenge"].Value.Properties
	challenges := regexp.MustCompile(chal["challenge"].Value.Pattern)
	if chal["difficulty"].Value.Max == nil || *chal["difficulty"].Value.Max != 32 ||
		(anonaccess.Config{PoWDifficulty: 33}).Check() == nil || (anonaccess.Config{PoWDifficulty: 32}).Check() != nil {
		t.Error("PoWChallenge.difficulty's maximum is not the configuration's")
	}
	owner := id.New()
	p := &poll.Poll{ID: id.New(), CreatorID: owner}
	s := anonaccess.New(anonaccess.Config{}, []byte("contract-secret-0123456789abcdef0123"),
		anonaccess.Deps{Store: mintOnly{}, Audit: noAudit{}, Log: zap.NewNop(), Now: time.Now, Metrics: prometheus.NewRegistry()})
	minted, err := s.Mint(t.Context(), p, owner, 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range minted {
		if !codes.MatchString(c) {
			t.Fatalf("minted code %q does not match %s", c, codes)
		}
	}
	for range 50 {
		c, err := s.Challenge(p)
		if err != nil || !challenges.MatchString(c.Value) {
			t.Fatalf("challenge %q (%v) does not match %s", c.Value, err, challenges)
		}
	}
}

// mintOnly takes a mint and holds nothing.
type mintOnly struct{}

func (mintOnly) AddInvites(context.Context, id.ID, [][]byte, time.Time) error { return nil }
func (mintOnly) InviteExists(context.Context, id.ID, []byte) (bool, error)    { return false, nil }
func (mintOnly) CountInvites(context.Context, id.ID) (int, error)             { return 0, nil }
func (mintOnly) CountBallots(context.Context, id.ID, []id.ID) (int, error)    { return 0, nil }
func (mintOnly) EachInvitePage(context.Context, id.ID, func([][]byte) error) error {
	return nil
}

type noAudit struct{}

func (noAudit) Append(context.Context, id.ID, id.ID, string, map[string]any) (audit.Entry, error) {
	return audit.Entry{}, nil
}
