// Package cassandra is the Apache Cassandra backend of the serving store: connection,
// versioned schema (schema.go), and the Store that writes and reads the query-shaped tables
// (store.go).
package cassandra

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/cassandra-gocql-driver/v2"
	"github.com/bytebasket/bytebasket/internal/config"
)

// Connect opens a session to the cluster (no keyspace bound: statements name it), routing
// each query to a replica in the local datacenter.
func Connect(ctx context.Context, cfg config.Cassandra) (*gocql.Session, error) {
	if len(cfg.Hosts) == 0 {
		return nil, fmt.Errorf("cassandra: no hosts configured")
	}
	consistency, err := gocql.ParseConsistencyWrapper(strings.ToUpper(cfg.Consistency))
	if err != nil {
		return nil, fmt.Errorf("cassandra: %w", err)
	}
	c := gocql.NewCluster(cfg.Hosts...)
	c.Consistency = consistency
	c.Timeout, c.ConnectTimeout = cfg.Timeout, cfg.Timeout
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.DCAwareRoundRobinPolicy(cfg.LocalDC))
	if cfg.Username != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: cfg.Username, Password: cfg.Password}
	}
	if cfg.TLS.Enabled {
		tc, err := cfg.TLS.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("cassandra: %w", err)
		}
		c.SslOpts = &gocql.SslOptions{Config: tc, EnableHostVerification: !cfg.TLS.InsecureSkipVerify}
	}
	s, err := c.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("cassandra: connect to %v: %w", cfg.Hosts, err)
	}
	if err := s.Query("SELECT release_version FROM system.local").ExecContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("cassandra: first query: %w", err)
	}
	return s, nil
}
