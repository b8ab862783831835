package sandbox_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestIdempotentByKey: the sandbox dedupes by idempotency key as a real
// provider does; the same key with another request is refused.
func TestIdempotentByKey(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	biz, _, err := business.Create(ctx, db.Bun, billing.NewSettableClock(now), business.CreateParams{Name: "sbx", Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	var due []string
	p := sandbox.New(sandbox.Config{DB: db.Bun, DueFunc: func(ctx context.Context, id string) { due = append(due, id) }})
	cfg := providers.Config{BusinessID: biz.ID, Active: providers.Sandbox, Sandbox: true}
	idr := func(n int64) billing.Money { return billing.Money{Amount: decimal.NewFromInt(n), Currency: "IDR"} }
	req := providers.LinkRequest{BusinessID: biz.ID, IdempotencyKey: "k1", Reference: "pr-1", Country: "ID", Amount: idr(150000), ChannelCode: "OVO", Now: now}
	first, err := p.StartLinking(ctx, cfg, req)
	if err != nil || first.Status != providers.StatusRequiresAction {
		t.Fatalf("%+v %v", first, err)
	}
	again, err := p.StartLinking(ctx, cfg, req)
	if err != nil || again.ProviderRef != first.ProviderRef {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	req.Amount = idr(1)
	if _, err := p.StartLinking(ctx, cfg, req); providers.KindOf(err) != providers.KindInvalid {
		t.Fatalf("reused key: %v", err)
	}
	ref := providers.PaymentRef{BusinessID: biz.ID, IdempotencyKey: "k1", Now: now}
	if err := p.Simulate(ctx, cfg, ref, idr(150000)); err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0] != biz.ID {
		t.Fatalf("due notifications %v", due)
	}
	got, err := p.GetPayment(ctx, cfg, ref)
	if err != nil || got.Status != providers.StatusSucceeded || got.TokenRef == "" {
		t.Fatalf("%+v %v", got, err)
	}
	if err := p.Simulate(ctx, cfg, ref, idr(150000)); providers.KindOf(err) != providers.KindInvalid {
		t.Fatalf("simulate twice: %v", err)
	}
	charge := providers.ChargeRequest{BusinessID: biz.ID, IdempotencyKey: "c1", Reference: "pr-2", TokenRef: got.TokenRef, Country: "ID", Amount: idr(5000), Now: now}
	one, err := p.Charge(ctx, cfg, charge)
	if err != nil || one.Status != providers.StatusSucceeded {
		t.Fatalf("%+v %v", one, err)
	}
	two, err := p.Charge(ctx, cfg, charge)
	if err != nil || two.ProviderRef != one.ProviderRef || two.PaymentRef != one.PaymentRef {
		t.Fatalf("repeat charge: %+v %v", two, err)
	}
	charge.Amount = billing.Money{Amount: decimal.NewFromInt(5000), Currency: "PHP"}
	charge.IdempotencyKey = "c2"
	if _, err := p.Charge(ctx, cfg, charge); providers.KindOf(err) != providers.KindInvalid {
		t.Fatalf("another currency: %v", err)
	}
	charge.TokenRef, charge.IdempotencyKey = "sbxpt-unknown", "c3"
	if _, err := p.Charge(ctx, cfg, charge); providers.KindOf(err) != providers.KindDeclined {
		t.Fatalf("unknown token: %v", err)
	}
	if _, err := p.GetPayment(ctx, cfg, providers.PaymentRef{BusinessID: biz.ID, IdempotencyKey: "nope", Now: now}); err != providers.ErrNotFound {
		t.Fatalf("unknown key: %v", err)
	}
	// Another business never sees these.
	other := providers.PaymentRef{BusinessID: "biz-00000000-0000-7000-8000-000000000000", IdempotencyKey: "k1", Now: now}
	if _, err := p.GetPayment(ctx, cfg, other); err != providers.ErrNotFound {
		t.Fatalf("another business: %v", err)
	}
}

func TestBehaviourValidation(t *testing.T) {
	p := sandbox.New(sandbox.Config{})
	for _, v := range []string{`"fail_sometimes"`, `"fail_until:tomorrow"`, `42`, `""`} {
		_, err := p.StartLinking(context.Background(), providers.Config{}, providers.LinkRequest{Metadata: map[string]json.RawMessage{"sandbox_behavior": json.RawMessage(v)}})
		e, ok := providers.AsError(err)
		if !ok || e.Kind != providers.KindInvalid || e.Field != "metadata.sandbox_behavior" {
			t.Errorf("%s: %v", v, err)
		}
	}
}
