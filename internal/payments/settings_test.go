package payments_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/providers"
	"github.com/tagihan/billing/providers/wooshpay"
	"github.com/tagihan/billing/providers/wooshpay/wooshpayfake"
	"github.com/tagihan/billing/providers/xendit"
	"github.com/uptrace/bun"
)

func (w *world) save(biz *business.Business, body string) (payments.SettingsView, error) {
	w.t.Helper()
	var v payments.SettingsView
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		v, err = w.svc.SaveSettings(ctx, tx, biz, w.now(biz), []byte(body))
		return err
	})
	return v, err
}

func TestProviderSettings(t *testing.T) {
	fake := wooshpayfake.New("sk_test_settings")
	defer fake.Close()
	public := ""
	w := setup(t, func(w *world) {
		w.extra = []providers.Provider{xendit.New(xendit.Config{BaseURL: "http://127.0.0.1:1"}), wooshpay.New(wooshpay.Config{BaseURL: fake.URL})}
		w.config = func(c *payments.Config) { c.PublicBaseURL = public }
	})
	v, err := w.svc.Settings(w.ctx, w.db.Bun, w.biz)
	if err != nil || v.Provider == nil || *v.Provider != "sandbox" || v.Xendit != nil {
		t.Fatalf("default: %+v %v", v, err)
	}
	live := w.newBusiness(business.ModeLive)
	if v, _ := w.svc.Settings(w.ctx, w.db.Bun, live); v.Provider != nil {
		t.Fatalf("live default: %+v", v)
	}

	for _, tc := range []struct{ body, field string }{
		{`{"provider":"paypal"}`, "provider"},
		{`{}`, "provider"},
		{`{"provider":"xendit"}`, "xendit.secret_key"},
		{`{"provider":"xendit","xendit":{"secret_key":"xnd_development_a"}}`, "xendit.callback_token"},
		{`{"provider":"xendit","xendit":{"secret_key":"xnd_production_a","callback_token":"t"}}`, "xendit.secret_key"},
		{`{"provider":"xendit","xendit":{"secret_key":"xnd_development_a","callback_token":"has space"}}`, "xendit.callback_token"},
		{`{"provider":"xendit","xendit":{"secret_key":"xnd_development_a","callback_token":"t","extra":1}}`, "extra"},
		{`{"provider":"wooshpay","wooshpay":{"secret_key":"sk_live_a","webhook_secret":"whsec_a"}}`, "wooshpay.secret_key"},
		{`{"provider":"wooshpay","wooshpay":{"secret_key":"sk_test_a"}}`, "wooshpay.webhook_secret"},
	} {
		_, err := w.save(w.biz, tc.body)
		wantError(t, err, "API_VALIDATION_ERROR", tc.field)
	}
	_, err = w.save(live, `{"provider":"sandbox"}`)
	wantError(t, err, "API_VALIDATION_ERROR", "provider")

	v, err = w.save(w.biz, `{"provider":"xendit","xendit":{"secret_key":"xnd_development_P4qDfOss0OCpl8RtKrROHjaQYNCk9dN5lSfk","callback_token":"tok-1"}}`)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(v)
	if strings.Contains(string(raw), "P4qDf") || strings.Contains(string(raw), "tok-1") || v.Xendit.SecretKeyHint != "xnd_development_…" || !v.Xendit.CallbackTokenSet {
		t.Fatalf("view shows too much or too little: %s", raw)
	}
	// Another business cannot use the same callback token.
	other := w.newBusiness(business.ModeSandbox)
	_, err = w.save(other, `{"provider":"xendit","xendit":{"secret_key":"xnd_development_b","callback_token":"tok-1"}}`)
	wantError(t, err, "DUPLICATE_ERROR", "xendit.callback_token")
	// Omitted secrets are kept; switching providers keeps the old ones, so
	// requests still open there can be reconciled.
	if _, err := w.save(w.biz, `{"provider":"xendit","xendit":{"callback_token":"tok-2"}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.save(w.biz, `{"provider":"wooshpay","wooshpay":{"secret_key":"sk_test_a","webhook_secret":"whsec_manual"}}`); err != nil {
		t.Fatal(err)
	}
	var row struct {
		Provider, XenditSecretKey, XenditCallbackToken, WooshPayWebhookSecret string
	}
	if err := w.db.Bun.NewRaw("SELECT provider, xendit_secret_key, xendit_callback_token, wooshpay_webhook_secret FROM provider_settings WHERE business_id = ?", w.biz.ID).
		Scan(w.ctx, &row.Provider, &row.XenditSecretKey, &row.XenditCallbackToken, &row.WooshPayWebhookSecret); err != nil {
		t.Fatal(err)
	}
	if row.Provider != "wooshpay" || row.XenditSecretKey != "xnd_development_P4qDfOss0OCpl8RtKrROHjaQYNCk9dN5lSfk" || row.XenditCallbackToken != "tok-2" || row.WooshPayWebhookSecret != "whsec_manual" {
		t.Fatalf("stored %+v", row)
	}

	// Without a webhook secret the engine registers its endpoint, which
	// needs the engine's public address; a key WooshPay refuses names the
	// field.
	public = "https://billing.example"
	w2 := setup(t, func(x *world) {
		x.extra = []providers.Provider{wooshpay.New(wooshpay.Config{BaseURL: fake.URL})}
		x.config = func(c *payments.Config) { c.PublicBaseURL = public }
	})
	v, err = w2.save(w2.biz, `{"provider":"wooshpay","wooshpay":{"secret_key":"sk_test_settings"}}`)
	if err != nil || !v.WooshPay.WebhookSecretSet || v.WooshPay.WebhookEndpointID == nil {
		t.Fatalf("registered: %+v %v", v.WooshPay, err)
	}
	if eps := fake.Endpoints(); len(eps) != 1 || eps[0].URL != "https://billing.example/callbacks/wooshpay?business_id="+w2.biz.ID {
		t.Fatalf("endpoints %+v", eps)
	}
	third := w2.newBusiness(business.ModeSandbox)
	_, err = w2.save(third, `{"provider":"wooshpay","wooshpay":{"secret_key":"sk_test_refused"}}`)
	wantError(t, err, "API_VALIDATION_ERROR", "wooshpay.secret_key")
}
