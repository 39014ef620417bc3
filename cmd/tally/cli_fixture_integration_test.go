//go:build integration

package main

import (
	"context"
	"testing"
	"time"

	"github.com/scylladb/gocqlx/v2"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/testenv"
)

// cliRig is what a test of a `tally` command needs: a fresh keyspace's
// config, the environment and binary to run the command with, a context
// bounding the test, and a session on the keyspace to set it up and check
// it. The session is closed when the test ends.
type cliRig struct {
	cfg config.Config
	env []string
	bin string
	ctx context.Context
	s   gocqlx.Session
}

func newCLIRig(t *testing.T) cliRig {
	t.Helper()
	cfg := testenv.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	s, err := cassandra.Connect(cfg.Cassandra, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return cliRig{cfg: cfg, env: testenv.Environ(cfg), bin: testenv.Binary(t), ctx: ctx, s: s}
}
