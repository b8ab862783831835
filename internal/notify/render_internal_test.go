package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
)

func TestFormatMoney(t *testing.T) {
	for _, tc := range []struct {
		amount   string
		currency billing.Currency
		en, id   string
	}{
		{"150000", "IDR", "IDR 150,000", "Rp 150.000"},
		{"1500000", "IDR", "IDR 1,500,000", "Rp 1.500.000"},
		{"999", "IDR", "IDR 999", "Rp 999"},
		{"0", "IDR", "IDR 0", "Rp 0"},
		{"1234.5", "PHP", "PHP 1,234.50", "PHP 1.234,50"},
		{"10000.01", "USD", "USD 10,000.01", "USD 10.000,01"},
		{"123456789012.99", "SGD", "SGD 123,456,789,012.99", "SGD 123.456.789.012,99"},
		{"25000", "VND", "VND 25,000", "VND 25.000"},
	} {
		m := billing.Money{Amount: decimal.RequireFromString(tc.amount), Currency: tc.currency}
		if got := formatMoney(LocaleEnglish, m); got != tc.en {
			t.Errorf("en %s %s = %q, want %q", tc.amount, tc.currency, got, tc.en)
		}
		if got := formatMoney(LocaleIndonesian, m); got != tc.id {
			t.Errorf("id %s %s = %q, want %q", tc.amount, tc.currency, got, tc.id)
		}
	}
}

func TestFormatDate(t *testing.T) {
	at := time.Date(2026, 8, 31, 23, 30, 0, 0, time.FixedZone("WIB", -7*3600)) // 1 September in UTC
	if got := formatDate(LocaleEnglish, at); got != "1 September 2026" {
		t.Errorf("en: %q", got)
	}
	if got := formatDate(LocaleIndonesian, at); got != "1 September 2026" {
		t.Errorf("id: %q", got)
	}
	if got := formatDate(LocaleIndonesian, time.Date(2026, 5, 17, 0, 0, 0, 0, time.UTC)); got != "17 Mei 2026" {
		t.Errorf("id May: %q", got)
	}
}

// TestEveryTemplateRenders renders each kind in each locale on each
// channel with every field set and with the optional ones empty: none
// fails, none leaves a template action or an empty placeholder behind.
func TestEveryTemplateRenders(t *testing.T) {
	full := templateData{CustomerName: "Siti Rahayu", BusinessName: "PDAM", Amount: "Rp 150.000", Date: "1 Maret 2026",
		PaymentLink: "https://pay.example/inv-1", AttemptNumber: 2}
	bare := templateData{CustomerName: "Siti Rahayu", BusinessName: "PDAM", Amount: "Rp 150.000", Date: "1 Maret 2026", AttemptNumber: 1}
	for _, locale := range []string{LocaleEnglish, LocaleIndonesian} {
		for _, k := range Kinds {
			for _, ch := range []Channel{ChannelEmail, ChannelWhatsApp, ChannelSMS} {
				for _, d := range []templateData{full, bare} {
					r, err := render(locale, k, ch, d)
					if err != nil {
						t.Fatalf("%s %s %s: %v", locale, k, ch, err)
					}
					if r.body == "" || strings.Contains(r.body, "{{") || strings.Contains(r.body, "<no value>") || strings.Contains(r.body, "  ") {
						t.Fatalf("%s %s %s: body %q", locale, k, ch, r.body)
					}
					if (ch == ChannelEmail) != (r.subject != "") {
						t.Fatalf("%s %s %s: subject %q", locale, k, ch, r.subject)
					}
					if d.PaymentLink != "" && (k == KindAttemptFailed || k == KindCycleFailed || k == KindServiceSuspended) &&
						!strings.Contains(r.body, d.PaymentLink) {
						t.Fatalf("%s %s %s: no payment link in %q", locale, k, ch, r.body)
					}
				}
			}
		}
	}
}
