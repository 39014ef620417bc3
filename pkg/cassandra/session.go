package cassandra

import (
	"context"
	"fmt"
	"regexp"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/migrate"
	"github.com/scylladb/gocqlx/v2/qb"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/cql"
)

var identRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,47}$`)

func (c Config) cluster(keyspace string) (*gocql.ClusterConfig, error) {
	cons, err := parseConsistency(c.Consistency)
	if err != nil {
		return nil, err
	}
	serial, err := parseSerial(c.SerialConsistency)
	if err != nil {
		return nil, err
	}
	cl := gocql.NewCluster(c.Hosts...)
	cl.Keyspace = keyspace
	cl.Consistency = cons
	cl.SerialConsistency = serial
	cl.Timeout = c.Timeout
	cl.ConnectTimeout = c.ConnectTimeout
	cl.NumConns = c.NumConns
	if c.ReconnectInterval > 0 {
		cl.ReconnectInterval = c.ReconnectInterval
	}
	cl.ProtoVersion = 4
	cl.DisableInitialHostLookup = c.DisableHostLookup
	// Token-aware routing sends each statement to a replica of its partition,
	// which saves a hop on every LWT.
	fallback := gocql.RoundRobinHostPolicy()
	if c.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(c.LocalDC)
	}
	cl.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback)
	if c.Username != "" {
		cl.Authenticator = gocql.PasswordAuthenticator{Username: c.Username, Password: c.Password}
	}
	return cl, nil
}

// Connect opens a session on the configured keyspace; each option may
// adjust the cluster configuration first (observers, for instance).
func Connect(cfg Config, log *zap.Logger, opts ...func(*gocql.ClusterConfig)) (gocqlx.Session, error) {
	cl, err := cfg.cluster(cfg.Keyspace)
	if err != nil {
		return gocqlx.Session{}, err
	}
	for _, o := range opts {
		o(cl)
	}
	s, err := gocqlx.WrapSession(cl.CreateSession())
	if err != nil {
		return gocqlx.Session{}, fmt.Errorf("connect cassandra %v: %w", cfg.Hosts, err)
	}
	log.Info("cassandra connected", zap.Strings("hosts", cfg.Hosts), zap.String("keyspace", cfg.Keyspace))
	return s, nil
}

// EnsureKeyspace creates the keyspace with the configured replication if it
// does not exist. Replication is configuration, not schema, so it lives here
// rather than in a migration file.
func EnsureKeyspace(ctx context.Context, cfg Config) error {
	stmt := fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s", cfg.Keyspace, cfg.Replication)
	if err := keyspaceStatement(ctx, cfg, stmt); err != nil {
		return fmt.Errorf("create keyspace %s: %w", cfg.Keyspace, err)
	}
	return nil
}

// DropKeyspace removes a keyspace; tests and the bench use it to clean up.
func DropKeyspace(ctx context.Context, cfg Config) error {
	return keyspaceStatement(ctx, cfg, "DROP KEYSPACE IF EXISTS "+cfg.Keyspace)
}

// keyspaceStatement runs a statement about cfg.Keyspace on a session bound
// to no keyspace. Keyspace DDL stays CQL text: qb builds no DDL, and a
// keyspace name cannot be a bound parameter (hence identRe).
func keyspaceStatement(ctx context.Context, cfg Config, stmt string) error {
	if !identRe.MatchString(cfg.Keyspace) {
		return fmt.Errorf("keyspace name %q is not a valid identifier", cfg.Keyspace)
	}
	cl, err := cfg.cluster("")
	if err != nil {
		return err
	}
	s, err := cl.CreateSession()
	if err != nil {
		return fmt.Errorf("connect cassandra %v: %w", cfg.Hosts, err)
	}
	defer s.Close()
	return s.Query(stmt).WithContext(ctx).Exec()
}

// Migrate creates the keyspace if needed and applies the embedded cql/
// files that have not been applied yet. Re-running it is a no-op; a file
// edited after it was applied is refused.
func Migrate(ctx context.Context, cfg Config, log *zap.Logger) error {
	if err := EnsureKeyspace(ctx, cfg); err != nil {
		return err
	}
	s, err := Connect(cfg, log)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := migrate.FromFS(ctx, s, cql.Files); err != nil {
		return fmt.Errorf("migrate keyspace %s: %w", cfg.Keyspace, err)
	}
	applied, err := migrate.List(ctx, s)
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	log.Info("schema migrated", zap.String("keyspace", cfg.Keyspace), zap.Int("files", len(applied)))
	return nil
}

var pingStatement = newStatement(qb.Select("system.local").Columns("release_version").ToCql())

// Ping checks that the cluster answers a query.
func Ping(ctx context.Context, s gocqlx.Session) error {
	var v string
	return pingStatement.query(ctx, s).GetRelease(&v)
}
