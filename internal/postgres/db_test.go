package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
)

// TestMain drops the database pgtest made for the package's tests.
func TestMain(m *testing.M) { pgtest.Main(m) }

// TestBunQueriesAreNotPrepared runs many queries whose values differ
// through bun on one connection: none of them may leave a prepared
// statement on the session (or its text cached in the process), while the
// results are read as usual.
func TestBunQueriesAreNotPrepared(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.URL(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Bun.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < 20; i++ {
		var got struct {
			N    int     `bun:"n"`
			Text string  `bun:"text"`
			Num  float64 `bun:"num"`
		}
		if err := conn.NewRaw("SELECT ? AS n, ? AS text, ?::numeric / 4 AS num", i, fmt.Sprintf("value %d", i), i).Scan(ctx, &got); err != nil {
			t.Fatal(err)
		}
		if got.N != i || got.Text != fmt.Sprintf("value %d", i) || got.Num != float64(i)/4 {
			t.Fatalf("query %d read %+v", i, got)
		}
	}
	var prepared int
	if err := conn.NewRaw("SELECT count(*) FROM pg_prepared_statements").Scan(ctx, &prepared); err != nil {
		t.Fatal(err)
	}
	if prepared != 0 {
		t.Fatalf("%d statements prepared on the session by bun's queries, want none", prepared)
	}
}
