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
	"sync"
	"sync/atomic"
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
	h, err := handle(db)
	if err != nil {
		return nil, err
	}
	return h.ExecContext(ctx, query, args...)
}

// sqlHandle is what database/sql's database, connection and transaction
// have in common.
type sqlHandle interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// handle returns the database/sql handle beneath db (a bun database,
// connection or transaction), which sends args apart from the text.
func handle(db bun.IDB) (sqlHandle, error) {
	switch d := db.(type) {
	case bun.Tx:
		return d.Tx, nil
	case *bun.Tx:
		return d.Tx, nil
	case bun.Conn:
		return d.Conn, nil
	case *bun.Conn:
		return d.Conn, nil
	case *bun.DB:
		return d.DB, nil
	}
	return nil, fmt.Errorf("postgres: %T is not a bun database, connection or transaction", db)
}

// A Statement is a query whose text never changes: its values are bind
// parameters ($1, $2, …; a list of keys is one array, "id = ANY($2)"). Each
// connection prepares it once, so PostgreSQL parses and plans it once per
// connection. A bun query writes its values into its text instead, and a
// look-up of 500 ids written as "id IN ('…', …)" took PostgreSQL longer to
// parse, analyse and plan than to run: in a profile of the charging
// benchmark, parsing and planning such look-ups was about a tenth of
// PostgreSQL's time.
//
// The text is built by build on first use, usually with bun's query
// builder so that the columns are the model's (a nil model will do:
// db.NewSelect().Model((*Row)(nil)).Where("id = ANY($1)").String()).
//
// Only look-ups by a unique key belong here: PostgreSQL may plan a
// prepared statement once for all values (a generic plan), which for
// "key = ANY($1)" probes the key's index whatever the table's size.
type Statement struct {
	build func(db bun.IDB) string
	once  sync.Once
	text  string
	runs  atomic.Int64
}

// NewStatement returns the Statement whose text build makes.
func NewStatement(build func(db bun.IDB) string) *Statement {
	return &Statement{build: build}
}

// Text returns the statement's text, building it on first use with db.
func (st *Statement) Text(db bun.IDB) string {
	st.once.Do(func() { st.text = st.build(db) })
	return st.text
}

// Scan runs the statement on db with args and scans the rows into dest as
// bun's Scan would (dest points to a model, a slice of models or a slice
// of values). An empty result leaves a slice empty and is no error.
func (st *Statement) Scan(ctx context.Context, db bun.IDB, dest any, args ...any) error {
	st.runs.Add(1)
	return Select(ctx, db, dest, st.Text(db), args...)
}

// Runs is how many times the statement was run in this process: bun's
// query hooks do not see it.
func (st *Statement) Runs() int64 { return st.runs.Load() }

// Select runs text, a query with a fixed text and bind parameters, on db
// with args, prepared once per connection (see Statement), and scans the
// rows into dest as Statement.Scan does.
func Select(ctx context.Context, db bun.IDB, dest any, text string, args ...any) error {
	h, err := handle(db)
	if err != nil {
		return err
	}
	// The mode comes after the one bunConnector puts first, and wins.
	rows, err := h.QueryContext(ctx, text, append([]any{pgx.QueryExecModeCacheStatement}, args...)...)
	if err != nil {
		return err
	}
	return db.NewSelect().DB().ScanRows(ctx, rows, dest)
}
