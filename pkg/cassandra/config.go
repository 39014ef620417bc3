// Package cassandra connects to the system of record, applies the schema and
// implements the stores the domain packages declare.
package cassandra

import (
	"fmt"
	"strings"
	"time"

	"github.com/gocql/gocql"
)

// Config describes how to reach the cluster. Defaults run on a laptop.
type Config struct {
	Hosts             []string      `env:"HOSTS" envDefault:"127.0.0.1:9042" envSeparator:","`
	Keyspace          string        `env:"KEYSPACE" envDefault:"tally"`
	Replication       string        `env:"REPLICATION" envDefault:"{'class': 'SimpleStrategy', 'replication_factor': 1}"`
	Consistency       string        `env:"CONSISTENCY" envDefault:"LOCAL_QUORUM"`
	SerialConsistency string        `env:"SERIAL_CONSISTENCY" envDefault:"LOCAL_SERIAL"`
	LocalDC           string        `env:"LOCAL_DC"`
	Username          string        `env:"USERNAME"`
	Password          string        `env:"PASSWORD"`
	Timeout           time.Duration `env:"TIMEOUT" envDefault:"5s"`
	ConnectTimeout    time.Duration `env:"CONNECT_TIMEOUT" envDefault:"10s"`
	NumConns          int           `env:"NUM_CONNS" envDefault:"2"`
	// ReconnectInterval is how often a node marked down is tried again.
	// gocql's default (60 s) keeps a process unable to reach a node for up
	// to a minute after a pause or restart it has long recovered from.
	ReconnectInterval time.Duration `env:"RECONNECT_INTERVAL" envDefault:"2s"`
	// DisableHostLookup connects only to Hosts as given, never to the
	// addresses the nodes advertise: for a cluster reached through a
	// proxy, tunnel or port-forward (and the fault tests' proxy). Token-
	// and DC-aware routing then have no topology to use.
	DisableHostLookup bool `env:"DISABLE_HOST_LOOKUP"`
}

func parseConsistency(s string) (gocql.Consistency, error) {
	var c gocql.Consistency
	if err := c.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("consistency %q: %w", s, err)
	}
	return c, nil
}

func parseSerial(s string) (gocql.SerialConsistency, error) {
	switch strings.ToUpper(s) {
	case "SERIAL":
		return gocql.Serial, nil
	case "LOCAL_SERIAL":
		return gocql.LocalSerial, nil
	}
	return 0, fmt.Errorf("serial consistency %q: want SERIAL or LOCAL_SERIAL", s)
}
