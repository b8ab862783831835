// Package postgres opens the engine's database (a pgx pool, and bun on top of
// the same pool) and finds one when none is configured: DATABASE_URL, then a
// server on localhost:5432, then a private cluster under ./.data/postgres
// (SPEC §2, "Embedded default database").
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// DB is one database opened two ways over one connection pool: Pool for
// River and for COPY-heavy paths, Bun for queries and migrations. Closing it
// closes both.
type DB struct {
	Pool *pgxpool.Pool
	Bun  *bun.DB
}

// Open connects to the database at url (a postgres:// URL or a libpq
// key=value string) and checks that it answers. maxConns bounds the pool;
// zero means pgx's default (the larger of 4 and the number of CPUs).
func Open(ctx context.Context, url string, maxConns int32) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	// No JIT compilation unless the URL asks for it: the engine's queries
	// are short and batched, and a plan costed high on statistics that lag
	// a burst of writes (tables that grew by 100,000 invoices within a
	// minute) would otherwise spend hundreds of milliseconds compiling a
	// query that runs in a few.
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	sqldb := sql.OpenDB(bunConnector{stdlib.GetPoolConnector(pool)})
	sqldb.SetMaxIdleConns(0) // as stdlib.OpenDBFromPool: the pool keeps the idle connections
	return &DB{Pool: pool, Bun: bun.NewDB(sqldb, pgdialect.New())}, nil
}

// bunConnector gives bun the pool's connections, with one change: their
// queries bypass pgx's statement cache (QueryExecModeExec, one round trip).
// bun writes every value into the SQL text, so a query with new values is
// a new text: caching it would prepare a server-side statement and keep its
// text and description on the connection (up to 512 per connection) for no
// reuse, which grows both processes' memory with every batch of distinct
// ids. River's queries, which use the pool directly with parameters, keep
// the cache.
type bunConnector struct{ driver.Connector }

// Connect returns a pool connection whose queries run uncached.
func (c bunConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		return conn, nil
	}
	return uncachedConn{sc}, nil
}

// uncachedConn is a pool connection for bun (see bunConnector). Every other
// method is stdlib's.
type uncachedConn struct{ *stdlib.Conn }

// QueryContext runs query with pgx's QueryExecModeExec: the extended
// protocol with an unnamed statement, nothing cached.
func (c uncachedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, query, append([]driver.NamedValue{{Ordinal: 1, Value: pgx.QueryExecModeExec}}, args...))
}

// Close closes bun's *sql.DB and then the pool.
func (db *DB) Close() {
	_ = db.Bun.Close()
	db.Pool.Close()
}

// WithDatabase returns url changed to connect to database name instead. It
// accepts both forms Open does: postgres:// URLs and key=value strings.
func WithDatabase(rawURL, name string) (string, error) {
	if strings.HasPrefix(rawURL, "postgres://") || strings.HasPrefix(rawURL, "postgresql://") {
		u, err := url.Parse(rawURL)
		if err != nil {
			return "", fmt.Errorf("parse database url: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In a key=value string the last setting of a key wins.
	return rawURL + " dbname='" + strings.ReplaceAll(name, "'", `\'`) + "'", nil
}

// Exec runs query on the database/sql handle beneath db (a bun database,
// connection or transaction) with args sent as bind parameters ($1, $2, …)
// apart from its text. bun writes every value into the SQL text, which
// PostgreSQL must then parse; a statement that carries many values at once
// (arrays to unnest, JSON documents) is cheaper for both processes with
// the values as parameters, and its fixed text is prepared once per
// connection.
func Exec(ctx context.Context, db bun.IDB, query string, args ...any) (sql.Result, error) {
	switch d := db.(type) {
	case bun.Tx:
		return d.Tx.ExecContext(ctx, query, args...)
	case *bun.Tx:
		return d.Tx.ExecContext(ctx, query, args...)
	case bun.Conn:
		return d.Conn.ExecContext(ctx, query, args...)
	case *bun.Conn:
		return d.Conn.ExecContext(ctx, query, args...)
	case *bun.DB:
		return d.DB.ExecContext(ctx, query, args...)
	}
	return nil, fmt.Errorf("postgres: exec on %T: not a bun database, connection or transaction", db)
}
