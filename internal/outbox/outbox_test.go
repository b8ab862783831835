package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// eventsWorld is a fresh database with a sandbox business named name whose
// clock reads at, and a count of the business's events.
func eventsWorld(t *testing.T, name string, at time.Time) (*postgres.DB, *billing.SettableClock, *business.Business, func() int) {
	t.Helper()
	ctx := context.Background()
	db := pgtest.New(t)
	clock := billing.NewSettableClock(at)
	biz, _, err := business.Create(ctx, db.Bun, clock, business.CreateParams{Name: name, Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n, err := db.Bun.NewSelect().Model((*outbox.Event)(nil)).Where("business_id = ?", biz.ID).Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	return db, clock, biz, count
}

func TestEmitIsPartOfTheCallersTransaction(t *testing.T) {
	ctx := context.Background()
	db, clock, biz, count := eventsWorld(t, "Outbox Test", time.Date(2026, 1, 31, 23, 59, 59, 0, time.UTC))
	var err error

	// Rolled back with the change: no event.
	errRollback := errors.New("rollback")
	err = db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := outbox.Emit(ctx, tx, biz.ID, outbox.CustomerServiceSuspended, clock.Now(), map[string]any{"customer_id": "cust-1"}); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) || count() != 0 {
		t.Fatalf("after rollback: err %v, %d events", err, count())
	}

	// Committed with the change: exactly one event, with its envelope.
	var ev *outbox.Event
	err = db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		ev, err = outbox.Emit(ctx, tx, biz.ID, outbox.CustomerServiceSuspended, clock.Now(), map[string]any{"customer_id": "cust-1", "amount": billing.NumberOf(dec("150000.5"))})
		return err
	})
	if err != nil || count() != 1 {
		t.Fatalf("after commit: err %v, %d events", err, count())
	}
	stored := new(outbox.Event)
	if err := db.Bun.NewSelect().Model(stored).Where("id = ?", ev.ID).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	raw, err := stored.Envelope()
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	d := json.NewDecoder(bytesReader(raw))
	d.UseNumber()
	if err := d.Decode(&env); err != nil {
		t.Fatal(err)
	}
	data := env["data"].(map[string]any)
	if env["id"] != ev.ID || env["event"] != "customer.service.suspended" || env["business_id"] != biz.ID ||
		env["created"] != "2026-01-31T23:59:59.000Z" || env["api_version"] != outbox.APIVersion ||
		data["customer_id"] != "cust-1" || data["amount"].(json.Number).String() != "150000.5" {
		t.Fatalf("envelope = %s", raw)
	}

	if _, err := outbox.Emit(ctx, db.Bun, biz.ID, "customer.created", clock.Now(), map[string]any{}); err == nil {
		t.Fatal("an unknown event type was accepted")
	}
	if _, err := outbox.Emit(ctx, db.Bun, biz.ID, outbox.InvoicePaid, clock.Now(), []int{1}); err == nil {
		t.Fatal("a non-object payload was accepted")
	}
}

// The events' business is checked once per statement by their trigger
// (migration 20261201000006) instead of a foreign key per row: a batch
// with one event of a business that does not exist is refused whole, as
// the key refused it, and one of an existing business is written.
func TestEventsOfAnUnknownBusinessAreRefused(t *testing.T) {
	ctx := context.Background()
	db, clock, biz, count := eventsWorld(t, "Outbox Keys", time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC))
	event := func(businessID string) *outbox.Event {
		e, err := outbox.New(businessID, outbox.CustomerServiceSuspended, clock.Now(), map[string]any{"customer_id": "cust-1"})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	err := outbox.EmitAll(ctx, db.Bun, []*outbox.Event{event(biz.ID), event(billing.NewID(billing.PrefixBusiness)), event(biz.ID)})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23503" || pgErr.ColumnName != "business_id" {
		t.Fatalf("events of an unknown business: err %v, want a foreign_key_violation on business_id", err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d events written by the refused statement", n)
	}

	if err := outbox.EmitAll(ctx, db.Bun, []*outbox.Event{event(biz.ID), event(biz.ID)}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d events written, want 2", n)
	}
	// The document is stored as the engine wrote it, not re-ordered.
	e := event(biz.ID)
	e.Data = json.RawMessage(`{"z":1,"a":{"y":"2","b":[3]}}`)
	if err := outbox.EmitAll(ctx, db.Bun, []*outbox.Event{e}); err != nil {
		t.Fatal(err)
	}
	var stored string
	if err := db.Bun.NewSelect().Model((*outbox.Event)(nil)).Column("data").Where("id = ?", e.ID).Scan(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	if stored != string(e.Data) {
		t.Fatalf("stored document %s, want %s", stored, e.Data)
	}
}
