package sandbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/sandbox"
)

// opened is when the tests' businesses are created, by their clocks.
var opened = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)

func idr(n int64) billing.Money { return billing.Money{Amount: decimal.NewFromInt(n), Currency: "IDR"} }

// newBusiness creates a sandbox business and returns its provider
// configuration.
func newBusiness(t *testing.T, db *postgres.DB) providers.Config {
	t.Helper()
	biz, _, err := business.Create(context.Background(), db.Bun, billing.NewSettableClock(opened), business.CreateParams{Name: "sbx", Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	return providers.Config{BusinessID: biz.ID, Active: providers.Sandbox, Sandbox: true}
}

// link runs a Pay and Save of 10,000 IDR under key, for a token with
// sandbox behaviour b ("" for none), that the simulated customer pays at
// paid; its callbacks are due then. It returns the token saved.
func link(t *testing.T, p *sandbox.Provider, cfg providers.Config, key, b string, paid time.Time) string {
	t.Helper()
	ctx := context.Background()
	req := providers.LinkRequest{BusinessID: cfg.BusinessID, IdempotencyKey: key, Reference: "pr-" + key, Country: "ID", Amount: idr(10000),
		ChannelCode: "OVO", Now: opened}
	if b != "" {
		req.Metadata = map[string]json.RawMessage{"sandbox_behavior": json.RawMessage(fmt.Sprintf("%q", b))}
	}
	if _, err := p.StartLinking(ctx, cfg, req); err != nil {
		t.Fatal(err)
	}
	ref := providers.PaymentRef{BusinessID: cfg.BusinessID, IdempotencyKey: key, Now: paid}
	if err := p.Simulate(ctx, cfg, ref, req.Amount); err != nil {
		t.Fatal(err)
	}
	res, err := p.GetPayment(ctx, cfg, ref)
	if err != nil || res.TokenRef == "" {
		t.Fatalf("linking %s saved no token: %+v %v", key, res, err)
	}
	return res.TokenRef
}
