package notify

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/tagihan/billing"
)

//go:embed templates
var templateFiles embed.FS

// templates holds, per locale and kind, a template set defining "subject",
// "body" (the message), "email" (the e-mail text around it) and "short"
// (the WhatsApp and SMS text around it).
var templates = func() map[string]map[Kind]*template.Template {
	out := map[string]map[Kind]*template.Template{}
	for _, locale := range []string{LocaleEnglish, LocaleIndonesian} {
		out[locale] = map[Kind]*template.Template{}
		for _, k := range Kinds {
			name := strings.ToLower(string(k)) + ".tmpl"
			t := template.Must(template.New(name).Option("missingkey=error").ParseFS(templateFiles,
				"templates/"+locale+"/layout.tmpl", "templates/"+locale+"/"+name))
			out[locale][k] = t
		}
	}
	return out
}()

// templateData is what the templates see. Every value is already
// formatted for the locale; an empty one is left out by the templates.
type templateData struct {
	CustomerName  string
	BusinessName  string
	Amount        string
	Date          string
	PaymentLink   string
	AttemptNumber int
}

// rendered is a message ready to send.
type rendered struct {
	subject string // e-mail only
	body    string
}

// render fills the templates of kind in locale for channel.
func render(locale string, kind Kind, channel Channel, d templateData) (rendered, error) {
	t := templates[locale][kind]
	if t == nil {
		return rendered{}, fmt.Errorf("notify: no template for %s in %q", kind, locale)
	}
	exec := func(name string) (string, error) {
		var b bytes.Buffer
		if err := t.ExecuteTemplate(&b, name, d); err != nil {
			return "", fmt.Errorf("render %s %s %s: %w", locale, kind, name, err)
		}
		return strings.TrimSpace(b.String()), nil
	}
	if channel == ChannelEmail {
		subject, err := exec("subject")
		if err != nil {
			return rendered{}, err
		}
		body, err := exec("email")
		return rendered{subject: subject, body: body}, err
	}
	body, err := exec("short")
	return rendered{body: body}, err
}

var monthsID = [...]string{"Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober", "November", "Desember"}

// formatDate writes the UTC calendar date of t: "1 March 2026" in English,
// "1 Maret 2026" in Indonesian.
func formatDate(locale string, t time.Time) string {
	t = t.UTC()
	if locale == LocaleIndonesian {
		return fmt.Sprintf("%d %s %d", t.Day(), monthsID[t.Month()-1], t.Year())
	}
	return fmt.Sprintf("%d %s %d", t.Day(), t.Month(), t.Year())
}

// formatMoney writes m with exactly its currency's decimal places and the
// locale's separators, from the decimal's digits (never through a float):
// "IDR 1,500,000" and "PHP 1,234.50" in English; "Rp 1.500.000" and
// "PHP 1.234,50" in Indonesian.
func formatMoney(locale string, m billing.Money) string {
	digits := m.Amount.Abs().StringFixed(m.Currency.Exponent())
	whole, frac, _ := strings.Cut(digits, ".")
	group, point := ",", "."
	if locale == LocaleIndonesian {
		group, point = ".", ","
	}
	var b strings.Builder
	if m.Amount.IsNegative() {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(group)
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString(point)
		b.WriteString(frac)
	}
	symbol := string(m.Currency) + " "
	if locale == LocaleIndonesian && m.Currency == "IDR" {
		symbol = "Rp "
	}
	return symbol + b.String()
}
