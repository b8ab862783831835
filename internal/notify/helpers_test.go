package notify_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type world struct {
	t     *testing.T
	ctx   context.Context
	db    *postgres.DB
	clock *billing.SettableClock
	biz   *business.Business
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), db: pgtest.New(t), clock: billing.NewSettableClock(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))}
	biz, _, err := business.Create(w.ctx, w.db.Bun, w.clock, business.CreateParams{Name: "PDAM Tirta Jaya", Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	w.biz = biz
	return w
}

func (w *world) service(cfg notify.Config) *notify.Service {
	cfg.DB, cfg.Clock = w.db.Bun, w.clock
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	return notify.New(cfg)
}

// customer creates a customer from a JSON body.
func (w *world) customer(body map[string]any) *customers.Customer {
	w.t.Helper()
	raw, _ := json.Marshal(body)
	p, err := customers.DecodeCreate(raw)
	if err != nil {
		w.t.Fatal(err)
	}
	c, err := customers.Create(w.ctx, w.db.Bun, w.biz.ID, w.now(), p)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func (w *world) siti() *customers.Customer {
	return w.customer(map[string]any{"reference_id": "PDAM-" + billing.NewID(""), "type": "INDIVIDUAL",
		"individual_detail": map[string]any{"given_names": "Siti", "surname": "Rahayu"},
		"email":             "siti@example.co.id", "mobile_number": "+6281234567890"})
}

func (w *world) now() time.Time {
	w.t.Helper()
	b, err := business.Get(w.ctx, w.db.Bun, w.biz.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return b.Clock().Now()
}

func (w *world) advance(d time.Duration) {
	w.t.Helper()
	if _, err := business.AdvanceClock(w.ctx, w.db.Bun, w.biz.ID, business.ClockAdvance{By: &d}); err != nil {
		w.t.Fatal(err)
	}
}

// queue queues m in a transaction of its own, as a feature would in its.
func (w *world) queue(svc *notify.Service, m notify.Message) []*notify.Notification {
	w.t.Helper()
	var out []*notify.Notification
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		out, err = svc.Queue(ctx, tx, w.now(), m)
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

func (w *world) get(id string) *notify.Notification {
	w.t.Helper()
	n := new(notify.Notification)
	if err := w.db.Bun.NewSelect().Model(n).Where("id = ?", id).Scan(w.ctx); err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *world) count(query string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.db.Bun.NewRaw(query, args...).Scan(w.ctx, &n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

func idr(amount int64) *billing.Money {
	return &billing.Money{Amount: decimal.NewFromInt(amount), Currency: "IDR"}
}

func ptr[T any](v T) *T { return &v }
