package migrations_test

import (
	"context"
	"sync"
	"testing"

	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestUpDownStatus(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	m, err := migrations.New(db.Pool, db.Bun)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Pending(ctx); err != nil || n != 0 {
		t.Fatalf("template database: %d pending, %v", n, err)
	}

	// Down one group removes the engine's last group only.
	done, err := m.Down(ctx, false)
	if err != nil || len(done) == 0 {
		t.Fatalf("Down = %v, %v", done, err)
	}
	if n, _ := m.Pending(ctx); n != len(done) {
		t.Fatalf("after Down: %d pending, want %d", n, len(done))
	}
	// Down --all leaves nothing of the engine or River.
	if _, err := m.Down(ctx, true); err != nil {
		t.Fatal(err)
	}
	var tables int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("after Down --all: %d tables remain (%v)", tables, err)
	}
	status, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range status {
		if s.Applied {
			t.Fatalf("after Down --all, %s %s is applied", s.Kind, s.Name)
		}
	}

	// Several processes starting at once: each Up waits for the lock and
	// exactly one applies each migration.
	var wg sync.WaitGroup
	results := make([]migrations.Applied, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = m.Up(ctx)
		}()
	}
	wg.Wait()
	total := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("concurrent Up %d: %v", i, errs[i])
		}
		total += len(results[i])
	}
	if total != len(status) {
		t.Fatalf("concurrent Ups applied %d migrations in all, want %d", total, len(status))
	}
	if n, err := m.Pending(ctx); err != nil || n != 0 {
		t.Fatalf("after Up: %d pending, %v", n, err)
	}
}

// TestBusinessKeysThroughCustomers checks what migration 20261201000005
// relies on for the tables it dropped their foreign key to businesses
// from: each references its customer by a NOT NULL (business_id,
// customer_id) pair, checked by a foreign key or by check_reference
// (migration 20261201000007), or through a parent that does (a cycle's
// customer is compared on its plan, a payment's on its payment request,
// migration 20261201000010), and customers reference businesses.
// Dropping one of those references fails here.
func TestBusinessKeysThroughCustomers(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	// The parents through which a table's customer is checked, and the
	// column naming the parent.
	through := map[string][2]string{"recurring_cycles": {"recurring_plans", "plan_id"}, "payments": {"payment_requests", "payment_request_id"}}
	for _, table := range []string{"payment_requests", "payment_tokens", "payments", "notifications", "recurring_plans",
		"recurring_cycles", "invoices"} {
		args := `customers\000business_id\000business_id\000customer_id\000id\000`
		if p, ok := through[table]; ok {
			args = p[0] + `\000business_id\000business_id\000customer_id\000customer_id\000` + p[1] + `\000id\000`
		}
		var ok bool
		err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute b JOIN pg_attribute c ON c.attrelid = b.attrelid
			WHERE b.attrelid = $1::regclass AND b.attname = 'business_id' AND b.attnotnull AND c.attname = 'customer_id' AND c.attnotnull
			AND (EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = b.attrelid AND k.contype = 'f'
					AND k.confrelid = 'customers'::regclass AND k.conkey = ARRAY[b.attnum, c.attnum])
				OR EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = b.attrelid AND g.tgfoid = 'check_reference'::regproc
					AND encode(g.tgargs, 'escape') = $2)))`,
			table, args).Scan(&ok)
		if err != nil || !ok {
			t.Errorf("%s: no reference (business_id, customer_id), both NOT NULL, to customers (%v)", table, err)
		}
	}
	var ok bool
	if err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'customers'::regclass
		AND contype = 'f' AND confrelid = 'businesses'::regclass)`).Scan(&ok); err != nil || !ok {
		t.Errorf("customers: no foreign key to businesses (%v)", err)
	}
}
