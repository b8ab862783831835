package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os/user"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoPostgres means that no database was configured, none answers on
// localhost:5432, and PostgreSQL's server programs are not installed. The
// command line reports it with exit code 2.
var ErrNoPostgres = errors.New("no PostgreSQL found: set DATABASE_URL to a PostgreSQL 14+ database, " +
	"or install PostgreSQL (on Debian or Ubuntu: apt-get install postgresql) so that the engine can run " +
	"a private cluster under ./.data/postgres")

// Found is where discovery found a database.
type Found struct {
	// URL connects to the database.
	URL string
	// Source says how it was found: "DATABASE_URL", "localhost:5432" or
	// "private cluster".
	Source string
	// Cluster is the private cluster when Source is "private cluster".
	Cluster *Cluster
}

// DiscoverOptions configure Discover.
type DiscoverOptions struct {
	// URL is the configured database (DATABASE_URL); when set, nothing else
	// is tried.
	URL string
	// Database is the database to use, and to create when missing, on a
	// server found on localhost:5432 or in the private cluster. Defaults to
	// "billing".
	Database string
	// ClusterDir is the folder of the private cluster. Defaults to
	// ".data/postgres".
	ClusterDir string
	// LocalAddr is the address probed in the second step. Defaults to
	// "localhost:5432".
	LocalAddr string
	// BinDirs are the folders searched for initdb and pg_ctl. Defaults to
	// the folders on PATH, then /usr/lib/postgresql/*/bin (newest first).
	BinDirs []string
	// Logger receives one line saying what was found. Defaults to discarding.
	Logger *slog.Logger
}

// Discover finds the engine's database in SPEC §2's order and returns how
// to reach it. When it starts a private cluster, the caller must call
// Found.Cluster.Stop when done. It returns ErrNoPostgres when there is
// nothing to use.
func Discover(ctx context.Context, opts DiscoverOptions) (*Found, error) {
	if opts.Database == "" {
		opts.Database = "billing"
	}
	if opts.ClusterDir == "" {
		opts.ClusterDir = ".data/postgres"
	}
	if opts.LocalAddr == "" {
		opts.LocalAddr = "localhost:5432"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.URL != "" {
		return &Found{URL: opts.URL, Source: "DATABASE_URL"}, nil
	}

	localURL, err := probeLocal(ctx, opts.LocalAddr, opts.Database)
	if err == nil {
		log.Info("using the PostgreSQL server on " + opts.LocalAddr)
		return &Found{URL: localURL, Source: "localhost:5432"}, nil
	}
	log.Info("no usable PostgreSQL server on "+opts.LocalAddr, "reason", err.Error())

	cl, err := newCluster(opts.ClusterDir, opts.BinDirs)
	if errors.Is(err, errNoServerBinaries) {
		return nil, ErrNoPostgres
	}
	if err != nil {
		return nil, err
	}
	if err := cl.Start(ctx); err != nil {
		return nil, err
	}
	if err := EnsureDatabase(ctx, cl.URL("postgres"), opts.Database); err != nil {
		_ = cl.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	log.Info("using the private PostgreSQL cluster in "+cl.Dir, "started_here", cl.StartedHere())
	return &Found{URL: cl.URL(opts.Database), Source: "private cluster", Cluster: cl}, nil
}

// probeLocal connects to addr as the user postgres, then as the current
// operating-system user, creates database db when missing, and returns a URL
// for it.
func probeLocal(ctx context.Context, addr, db string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	_ = conn.Close()
	users := []string{"postgres"}
	if u, err := user.Current(); err == nil && u.Username != "postgres" {
		users = append(users, u.Username)
	}
	var lastErr error
	for _, name := range users {
		base := url.URL{Scheme: "postgres", User: url.User(name), Host: addr, RawQuery: "sslmode=disable&connect_timeout=5"}
		maint := base
		maint.Path = "/postgres"
		if err := EnsureDatabase(ctx, maint.String(), db); err != nil {
			lastErr = err
			continue
		}
		base.Path = "/" + db
		return base.String(), nil
	}
	return "", lastErr
}

// EnsureDatabase creates database name on the server that maintenanceURL
// reaches, unless it exists.
func EnsureDatabase(ctx context.Context, maintenanceURL, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, maintenanceURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by another process
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
