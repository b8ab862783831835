package migrations_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tagihan/billing/internal/pgtest"
)

// The references of migrations 20261201000007, 20261201000008 and
// 20261201000010: each replaced foreign key, as (referencing table,
// referenced table, referencing columns, referenced columns).
var statementReferences = []struct {
	table, parent string
	columns, keys []string
}{
	{"cycle_attempts", "recurring_cycles", []string{"business_id", "cycle_id"}, []string{"business_id", "id"}},
	{"payment_requests", "payment_tokens", []string{"business_id", "payment_token_id"}, []string{"business_id", "id"}},
	{"payment_requests", "customers", []string{"business_id", "customer_id"}, []string{"business_id", "id"}},
	{"payments", "payment_requests", []string{"business_id", "customer_id", "payment_request_id"}, []string{"business_id", "customer_id", "id"}},
	{"payments", "payment_tokens", []string{"business_id", "payment_token_id"}, []string{"business_id", "id"}},
	{"provider_callbacks", "businesses", []string{"business_id"}, []string{"id"}},
	{"sandbox_payments", "sandbox_tokens", []string{"token_id"}, []string{"id"}},
	{"sandbox_payments", "businesses", []string{"business_id"}, []string{"id"}},
	{"sandbox_callbacks", "sandbox_payments", []string{"payment_id"}, []string{"id"}},
	{"sandbox_callbacks", "businesses", []string{"business_id"}, []string{"id"}},
	{"recurring_cycles", "recurring_plans", []string{"business_id", "customer_id", "plan_id"}, []string{"business_id", "customer_id", "id"}},
	{"invoice_audit", "invoices", []string{"invoice_id"}, []string{"id"}},
	// Migration 20261201000008.
	{"invoices", "recurring_cycles", []string{"business_id", "cycle_id"}, []string{"business_id", "id"}},
	{"payment_tokens", "payment_requests", []string{"business_id", "consent_payment_request_id"}, []string{"business_id", "id"}},
	{"recurring_plans", "payment_requests", []string{"business_id", "auth_payment_request_id"}, []string{"business_id", "id"}},
}

// TestReferencesAreWired checks that each reference of migration
// 20261201000007 has its three triggers, with the columns of the foreign
// key it replaced: the statement check of inserts, the row check of
// updates that change the columns, and the guard against deleting a row
// still referenced; and that every referenced table refuses key changes.
func TestReferencesAreWired(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	args := func(first string, pairs ...[]string) string {
		out := first + `\000`
		for i := range pairs[0] {
			out += pairs[0][i] + `\000` + pairs[1][i] + `\000`
		}
		return out
	}
	parents := map[string]bool{}
	for _, r := range statementReferences {
		parents[r.parent] = true
		check, guard := args(r.parent, r.columns, r.keys), args(r.table, r.keys, r.columns)
		var insert, update, del int
		err := db.Pool.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE g.tgrelid = $1::regclass AND g.tgfoid = 'check_reference'::regproc AND encode(g.tgargs, 'escape') = $3
				AND g.tgtype = 4 AND g.tgnewtable = 'new_rows'),
			count(*) FILTER (WHERE g.tgrelid = $1::regclass AND g.tgfoid = 'check_reference'::regproc AND encode(g.tgargs, 'escape') = $3
				AND g.tgtype = 19 AND g.tgqual IS NOT NULL
				AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM unnest(g.tgattr) AS k(n)
					JOIN pg_attribute a ON a.attrelid = g.tgrelid AND a.attnum = k.n) = (SELECT array_agg(c ORDER BY c) FROM unnest($5::text[]) AS c)),
			count(*) FILTER (WHERE g.tgrelid = $2::regclass AND g.tgfoid = 'keep_referenced'::regproc AND encode(g.tgargs, 'escape') = $4
				AND g.tgtype = 11)
			FROM pg_trigger AS g`, r.table, r.parent, check, guard, r.columns).Scan(&insert, &update, &del)
		if err != nil {
			t.Fatal(err)
		}
		if insert != 1 || update != 1 || del != 1 {
			t.Errorf("%s (%s) → %s: %d insert checks, %d update checks, %d delete guards; want one each",
				r.table, strings.Join(r.columns, ", "), r.parent, insert, update, del)
		}
		var fks int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = $1::regclass
			AND confrelid = $2::regclass`, r.table, r.parent).Scan(&fks); err != nil || fks != 0 {
			t.Errorf("%s → %s: %d foreign keys left beside the triggers (%v)", r.table, r.parent, fks, err)
		}
	}
	for parent := range parents {
		// check_reference finds each key by the referenced table's
		// primary key, its last column pair: id.
		var pk string
		if err := db.Pool.QueryRow(ctx, `SELECT string_agg(a.attname, ', ') FROM pg_index i
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
			WHERE i.indrelid = $1::regclass AND i.indisprimary`, parent).Scan(&pk); err != nil || pk != "id" {
			t.Errorf("%s: primary key (%s), want (id) (%v)", parent, pk, err)
		}
		var fixed int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::regclass
			AND tgfoid = 'refuse_key_change'::regproc AND tgqual IS NOT NULL`, parent).Scan(&fixed); err != nil || fixed != 1 {
			t.Errorf("%s: %d key-change guards, want 1 (%v)", parent, fixed, err)
		}
	}
}

// TestReferenceChecks exercises check_reference, keep_referenced and
// refuse_key_change on tables of their own, wired by add_reference as the
// migrations wire the engine's, and then on one of the engine's tables.
func TestReferenceChecks(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	exec := func(sql string, args ...any) error {
		_, err := db.Pool.Exec(ctx, sql, args...)
		return err
	}
	must := func(sql string, args ...any) {
		t.Helper()
		if err := exec(sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	refused := func(what string, err error, column string) {
		t.Helper()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23503" || pgErr.ColumnName != column {
			t.Fatalf("%s: err %v, want foreign_key_violation naming column %q", what, err, column)
		}
	}
	must(`CREATE TABLE t_parent (business_id text NOT NULL, id text PRIMARY KEY)`)
	must(`CREATE TABLE t_child (id serial PRIMARY KEY, business_id text NOT NULL, parent_id text, note text)`)
	must(`SELECT add_reference('t_child', 'parent_ref', 't_parent', ARRAY['business_id', 'parent_id'], ARRAY['business_id', 'id'])`)
	must(`CREATE TRIGGER t_parent_key_fixed BEFORE UPDATE OF id, business_id ON t_parent FOR EACH ROW
		WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.business_id IS DISTINCT FROM NEW.business_id) EXECUTE FUNCTION refuse_key_change()`)
	must(`INSERT INTO t_parent VALUES ('b1', 'p1'), ('b1', 'p2'), ('b2', 'p3'), ('b2', 'p9')`)

	// Inserts: a statement with one key naming no row fails whole; one
	// whose keys all name rows (repeated, or NULL, which is not checked)
	// goes in.
	refused("a batch with another business's parent", exec(`INSERT INTO t_child (business_id, parent_id)
		VALUES ('b1', 'p1'), ('b1', 'p3'), ('b1', 'p2')`), "business_id, parent_id")
	must(`INSERT INTO t_child (business_id, parent_id) VALUES ('b1', 'p1'), ('b1', 'p1'), ('b1', 'p2'), ('b2', NULL), ('b2', 'p3')`)
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM t_child`).Scan(&n); err != nil || n != 5 {
		t.Fatalf("%d children after the refused and the accepted batch, want 5 (%v)", n, err)
	}
	refused("INSERT … SELECT of a missing parent", exec(`INSERT INTO t_child (business_id, parent_id) SELECT 'b2', 'p4'`),
		"business_id, parent_id")

	// Updates: to a key naming no row fails; to another row's key, or of
	// other columns only, goes through.
	refused("an update to a missing parent", exec(`UPDATE t_child SET parent_id = 'p4' WHERE parent_id = 'p3'`), "business_id, parent_id")
	refused("an update to another business", exec(`UPDATE t_child SET business_id = 'b2' WHERE parent_id = 'p2'`), "business_id, parent_id")
	must(`UPDATE t_child SET parent_id = 'p9' WHERE parent_id = 'p3'`)
	must(`UPDATE t_child SET note = 'seen'`)

	// Deletes: a parent still referenced stays; one no longer referenced
	// goes. Keys never change.
	refused("deleting a referenced parent", exec(`DELETE FROM t_parent WHERE id = 'p1'`), "")
	must(`DELETE FROM t_child WHERE parent_id = 'p2'`)
	must(`DELETE FROM t_parent WHERE id = 'p2'`)
	refused("changing a parent's key", exec(`UPDATE t_parent SET id = 'p5' WHERE id = 'p9'`), "")

	// A delete racing an insert that references the row: the insert's
	// check locks the parent FOR KEY SHARE, so the delete waits for it to
	// commit and then sees the new reference.
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	must(`INSERT INTO t_parent VALUES ('b3', 'p6')`)
	if _, err := tx.Exec(ctx, `INSERT INTO t_child (business_id, parent_id) VALUES ('b3', 'p6')`); err != nil {
		t.Fatal(err)
	}
	deleted := make(chan error, 1)
	go func() { deleted <- exec(`DELETE FROM t_parent WHERE id = 'p6'`) }()
	select {
	case err := <-deleted:
		t.Fatalf("the delete did not wait for the inserting transaction: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	refused("deleting a parent referenced meanwhile", <-deleted, "")

	// One of the engine's tables: an audit entry of an invoice that does
	// not exist.
	refused("invoice_audit of an unknown invoice", exec(`INSERT INTO invoice_audit (id, business_id, invoice_id, action, actor, created)
		VALUES ('inva-x', 'biz-x', 'inv-missing', 'paid', 'engine', now())`), "invoice_id")
}
