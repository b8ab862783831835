// Package pgtest gives each test package its own PostgreSQL database, cloned
// from a template that has every migration applied. Packages then run in
// parallel without sharing rows, and no test pays for migrating.
//
// The server is TEST_DATABASE_URL when set, else what the engine's own
// discovery finds (localhost:5432, else the private cluster in the module's
// .data/postgres, which is left running for the next package). When no
// database can be had, tests are skipped, except when the CI variable is set:
// then they fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/migrations"
)

const (
	templatePrefix = "billing_tmpl_"
	clonePrefix    = "billing_t_"
	lockKey        = int64(0x70677465737400) // "pgtest"
	staleAfter     = 3 * time.Hour
)

var (
	once     sync.Once
	shared   *postgres.DB
	cloneURL string
	maintURL string
	cloneDB  string
	setupErr error
)

// New returns this test binary's database. Every call returns the same *DB;
// tests keep apart by creating their own rows (usually their own business).
// Call Main from TestMain so that the database is dropped afterwards.
func New(t testing.TB) *postgres.DB {
	t.Helper()
	once.Do(setup)
	if setupErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("pgtest: no database (CI is set, so this fails rather than skips): %v", setupErr)
		}
		t.Skipf("pgtest: no database: %v", setupErr)
	}
	return shared
}

// URL returns the connection string of this test binary's database, for
// tests that start a second process or pool against it. It calls New.
func URL(t testing.TB) string {
	New(t)
	return cloneURL
}

// Fresh returns a database of the test's own, cloned from the template
// (so it is migrated and empty), with its connection string; it is dropped
// when the test ends. Use it when a test needs a database no other test
// touches, such as one with no business at all.
func Fresh(t testing.TB) (*postgres.DB, string) {
	t.Helper()
	New(t)
	ctx := context.Background()
	name, err := cloneTemplate(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	url, err := postgres.WithDatabase(cloneURL, name)
	if err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, url, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		if err := dropDatabase(context.Background(), name); err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
		}
	})
	return db, url
}

// Main runs the tests and then drops the package's database.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Close()
		if err := dropDatabase(context.Background(), cloneDB); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: drop %s: %v\n", cloneDB, err)
		}
	}
	os.Exit(code)
}

func setup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	serverURL := os.Getenv("TEST_DATABASE_URL")
	if serverURL == "" {
		found, err := postgres.Discover(ctx, postgres.DiscoverOptions{ClusterDir: filepath.Join(moduleRoot(), ".data", "postgres")})
		if err != nil {
			setupErr = err
			return
		}
		serverURL = found.URL
	}
	var err error
	if maintURL, err = postgres.WithDatabase(serverURL, "postgres"); err != nil {
		setupErr = err
		return
	}
	cloneDB, setupErr = cloneTemplate(ctx)
	if setupErr != nil {
		return
	}
	if cloneURL, setupErr = postgres.WithDatabase(serverURL, cloneDB); setupErr != nil {
		return
	}
	shared, setupErr = postgres.Open(ctx, cloneURL, 10)
}

// cloneTemplate makes sure the template for the current migrations exists
// and creates this binary's database from it, all under an advisory lock
// shared by every test binary.
func cloneTemplate(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, maintURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return "", err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey) //nolint:errcheck

	template := templatePrefix + migrations.Fingerprint()
	dropStale(ctx, conn, template)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", template).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if err := buildTemplate(ctx, conn, template); err != nil {
			return "", fmt.Errorf("build template %s: %w", template, err)
		}
	}
	name := fmt.Sprintf("%s%d_%s_%s", clonePrefix, billing.SystemClock{}.Now().Unix(), packageTag(), randomHex(4))
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize())); err != nil {
		return "", fmt.Errorf("clone %s: %w", template, err)
	}
	return name, nil
}

// buildTemplate creates the template under a temporary name, migrates it,
// and only then renames it, so that a build cut short is never used.
func buildTemplate(ctx context.Context, conn *pgx.Conn, template string) error {
	wip := template + "_wip"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{wip}.Sanitize()+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{wip}.Sanitize()); err != nil {
		return err
	}
	wipURL, err := postgres.WithDatabase(maintURL, wip)
	if err != nil {
		return err
	}
	db, err := postgres.Open(ctx, wipURL, 4)
	if err != nil {
		return err
	}
	m, err := migrations.New(db.Pool, db.Bun)
	if err == nil {
		_, err = m.Up(ctx)
	}
	db.Close()
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", pgx.Identifier{wip}.Sanitize(), pgx.Identifier{template}.Sanitize()))
	return err
}

// dropStale removes templates of other migration sets and clones older than
// staleAfter (left by test binaries that were killed).
func dropStale(ctx context.Context, conn *pgx.Conn, keep string) {
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'billing\\_tmpl\\_%' OR datname LIKE 'billing\\_t\\_%'")
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, name := range names {
		stale := false
		switch {
		case strings.HasPrefix(name, templatePrefix):
			stale = name != keep && !strings.HasSuffix(name, "_wip")
		case strings.HasPrefix(name, clonePrefix):
			ts, _, _ := strings.Cut(strings.TrimPrefix(name, clonePrefix), "_")
			sec, err := strconv.ParseInt(ts, 10, 64)
			stale = err == nil && billing.SystemClock{}.Now().Sub(time.Unix(sec, 0)) > staleAfter
		}
		if stale {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		}
	}
}

func dropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, maintURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// packageTag is a short name of the test binary, for telling clones apart.
func packageTag() string {
	base := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
		if b.Len() >= 16 {
			break
		}
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// moduleRoot finds the folder holding go.mod above the working directory
// (go test runs each package in its own folder).
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
