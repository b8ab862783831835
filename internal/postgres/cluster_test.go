package postgres_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/tagihan/billing/internal/postgres"
)

// TestPrivateClusterKeepsDataAcrossRestarts plays the third step of the
// discovery: a cluster is created in an empty folder, started on a unix
// socket, stopped, started again, and still holds what was written.
func TestPrivateClusterKeepsDataAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	// A deep folder also exercises the short socket link.
	dir := filepath.Join(reachableTempDir(t), strings.Repeat("deep", 20), "postgres")
	cl, err := postgres.NewCluster(dir)
	if err != nil {
		if os.Getenv("CI") == "" && strings.Contains(err.Error(), "not found") {
			t.Skip("PostgreSQL server programs are not installed")
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Stop(context.Background()) })
	if err := cl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !cl.StartedHere() {
		t.Fatal("a new cluster was not started by Start")
	}
	if err := postgres.EnsureDatabase(ctx, cl.URL("postgres"), "billing"); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) string {
		t.Helper()
		conn, err := pgx.Connect(ctx, cl.URL("billing"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var out string
		if err := conn.QueryRow(ctx, sql).Scan(&out); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		return out
	}
	exec(`CREATE TABLE kept AS SELECT 'still here'::text AS v`)
	if err := cl.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, cl.URL("billing")); err == nil {
		t.Fatal("server still answers after Stop")
	}
	again, err := postgres.NewCluster(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Stop(context.Background()) })
	if err := again.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := exec(`SELECT v FROM kept`); got != "still here" {
		t.Fatalf("after restart: %q", got)
	}
	// A second engine finding the cluster running neither restarts nor
	// stops it.
	third, _ := postgres.NewCluster(dir)
	if err := third.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if third.StartedHere() {
		t.Fatal("Start restarted a running cluster")
	}
	_ = third.Stop(ctx)
	if got := exec(`SELECT v FROM kept`); got != "still here" {
		t.Fatal("Stop by a process that did not start the cluster stopped it")
	}
}

func TestDiscoverPrefersDatabaseURL(t *testing.T) {
	f, err := postgres.Discover(context.Background(), postgres.DiscoverOptions{URL: "postgres://x@db.example:5432/billing"})
	if err != nil || f.Source != "DATABASE_URL" || f.URL != "postgres://x@db.example:5432/billing" {
		t.Fatalf("Discover = %+v, %v", f, err)
	}
}

func TestDiscoverFallsBackToPrivateCluster(t *testing.T) {
	if _, err := postgres.NewCluster(t.TempDir()); err != nil {
		t.Skip("PostgreSQL server programs are not installed")
	}
	dir := filepath.Join(reachableTempDir(t), "pg")
	// Nothing listens on port 1, so the local probe fails and the cluster is used.
	f, err := postgres.Discover(context.Background(), postgres.DiscoverOptions{ClusterDir: dir, LocalAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Cluster.Stop(context.Background()) })
	if f.Source != "private cluster" {
		t.Fatalf("Source = %q", f.Source)
	}
	db, err := postgres.Open(context.Background(), f.URL, 2)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if err := db.Pool.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil || name != "billing" {
		t.Fatalf("current_database = %q, %v", name, err)
	}
	db.Close()
}

// reachableTempDir returns a temporary folder that the cluster's
// unprivileged user can enter when the tests run as root.
func reachableTempDir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // t.TempDir makes both 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDiscoverWithoutPostgres(t *testing.T) {
	_, err := postgres.Discover(context.Background(), postgres.DiscoverOptions{
		ClusterDir: filepath.Join(t.TempDir(), "pg"), LocalAddr: "127.0.0.1:1", BinDirs: []string{t.TempDir()},
	})
	if !errors.Is(err, postgres.ErrNoPostgres) || !strings.Contains(err.Error(), "apt-get install postgresql") || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("err = %v, want ErrNoPostgres saying how to install PostgreSQL or set DATABASE_URL", err)
	}
}
