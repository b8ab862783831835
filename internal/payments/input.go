package payments

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/providers"
)

// CreateParams is the body of POST /payment_requests (Xendit's v3 create
// payment request). Unknown fields are ignored, as Xendit's SDKs send more.
type CreateParams struct {
	ReferenceID       string                     `json:"reference_id"`
	Type              string                     `json:"type"`
	Country           string                     `json:"country"`
	Currency          string                     `json:"currency"`
	RequestAmount     *billing.Number            `json:"request_amount"`
	CaptureMethod     *string                    `json:"capture_method"`
	ChannelCode       string                     `json:"channel_code"`
	ChannelProperties map[string]json.RawMessage `json:"channel_properties"`
	CustomerID        *string                    `json:"customer_id"`
	Customer          json.RawMessage            `json:"customer"`
	PaymentTokenID    *string                    `json:"payment_token_id"`
	Description       *string                    `json:"description"`
	Metadata          map[string]json.RawMessage `json:"metadata"`

	// Amount is request_amount in currency, checked.
	Amount billing.Money `json:"-"`
	// NewCustomer is the inline customer, validated, when one was given.
	NewCustomer *customers.CreateParams `json:"-"`
}

// Limits on payment request fields.
const (
	maxReference        = 255
	maxDescription      = 1000
	maxChannelPropBytes = 4 << 10
	maxURL              = 2048
)

// DecodeCreate reads and validates a POST /payment_requests body. Every
// problem is reported at once as an API_VALIDATION_ERROR naming the fields;
// what needs the database (the customer, the token) is checked later.
func DecodeCreate(body []byte) (CreateParams, error) {
	var p CreateParams
	if err := billing.DecodeJSON(body, &p, false); err != nil {
		return CreateParams{}, err
	}
	var v billing.Validation
	checkText(&v, "reference_id", &p.ReferenceID, true, maxReference)
	if p.Description != nil {
		checkText(&v, "description", p.Description, true, maxDescription)
	}
	customers.ValidateMetadata(&v, "metadata", p.Metadata)
	if p.CaptureMethod != nil {
		v.Check(*p.CaptureMethod == captureMethodAutomatic, "capture_method", "must be AUTOMATIC (the only capture method the engine supports)")
	}
	currency, countryOK := p.checkCountryCurrency(&v)
	if p.RequestAmount == nil {
		v.Add("request_amount", "is required")
	} else if p.RequestAmount.Sign() <= 0 {
		v.Add("request_amount", "must be greater than 0")
	} else if currency.Valid() {
		m, err := billing.NewMoney("request_amount", p.RequestAmount.Decimal, currency)
		v.Merge("request_amount", err)
		p.Amount = m
	}
	checkChannelProperties(&v, p.ChannelProperties, p.Type == TypePayAndSave)
	switch p.Type {
	case TypePayAndSave:
		if v.Check(p.ChannelCode != "", "channel_code", "is required for PAY_AND_SAVE") && countryOK {
			checkChannel(&v, p.Country, p.ChannelCode)
		}
		v.Check(p.PaymentTokenID == nil, "payment_token_id", "must not be given for PAY_AND_SAVE, which saves a new token")
		p.checkCustomer(&v)
	case TypePay:
		if v.Check(p.PaymentTokenID != nil && *p.PaymentTokenID != "", "payment_token_id", "is required for PAY: the saved token to charge") &&
			p.ChannelCode != "" && countryOK {
			checkChannel(&v, p.Country, p.ChannelCode)
		}
		v.Check(!present(p.Customer), "customer", "must not be given for PAY; the token's customer pays")
	case "":
		v.Add("type", "is required: PAY_AND_SAVE or PAY")
	default:
		v.Add("type", "must be PAY_AND_SAVE (pay and save the payment method) or PAY (charge a saved token)")
	}
	if err := v.Err(); err != nil {
		return CreateParams{}, err
	}
	return p, nil
}

// checkCountryCurrency checks country and currency and that they fit; it
// returns the currency (when valid) and whether the country is known.
func (p *CreateParams) checkCountryCurrency(v *billing.Validation) (billing.Currency, bool) {
	want, countryOK := providers.CurrencyOf(p.Country)
	switch {
	case p.Country == "":
		v.Add("country", "is required: one of "+strings.Join(providers.Countries(), ", "))
	case !countryOK:
		v.Add("country", "must be one of "+strings.Join(providers.Countries(), ", "))
	}
	if p.Currency == "" {
		v.Add("currency", "is required")
		return "", countryOK
	}
	c, err := billing.ParseCurrency("currency", p.Currency)
	if err != nil {
		v.Merge("currency", err)
		return "", countryOK
	}
	if countryOK && c != want {
		v.Add("currency", fmt.Sprintf("must be %s for country %s", want, p.Country))
		return "", countryOK
	}
	return c, countryOK
}

func checkChannel(v *billing.Validation, country, channel string) {
	for _, c := range providers.Channels(country) {
		if c == channel {
			return
		}
	}
	if where := providers.ChannelCountries(channel); len(where) > 0 {
		v.Add("channel_code", fmt.Sprintf("%s is not offered in %s (only in %s); use one of %s", channel, country,
			strings.Join(where, ", "), strings.Join(providers.Channels(country), ", ")))
		return
	}
	v.Add("channel_code", fmt.Sprintf("is not a known channel; in %s use one of %s", country, strings.Join(providers.Channels(country), ", ")))
}

// checkCustomer checks that a PAY_AND_SAVE names exactly one of customer_id
// and customer, and validates an inline customer as POST /customers would.
func (p *CreateParams) checkCustomer(v *billing.Validation) {
	hasID, hasInline := p.CustomerID != nil && *p.CustomerID != "", present(p.Customer)
	switch {
	case hasID && hasInline:
		v.Add("customer", "cannot be combined with customer_id; give one of them")
	case !hasID && !hasInline:
		v.Add("customer_id", "is required for PAY_AND_SAVE, unless customer is given")
	case hasInline:
		c, err := customers.DecodeCreate(p.Customer)
		if err != nil {
			prefixFields(v, "customer", err)
			return
		}
		p.NewCustomer = &c
	}
}

// prefixFields adds err's field errors to v under prefix ("customer.email").
func prefixFields(v *billing.Validation, prefix string, err error) {
	e, ok := billing.AsError(err)
	if !ok || len(e.Fields) == 0 {
		v.Add(prefix, "is not valid")
		return
	}
	for _, f := range e.Fields {
		name := prefix + "." + f.Field
		if f.Field == "body" {
			name = prefix
		}
		v.Add(name, f.Message)
	}
}

func present(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && string(t) != "null"
}

// checkChannelProperties checks the object passed on to the provider:
// at most 4 KiB, and, when present (required for PAY_AND_SAVE, where the
// customer is redirected), absolute http(s) return URLs.
func checkChannelProperties(v *billing.Validation, props map[string]json.RawMessage, needURLs bool) {
	if props == nil {
		v.Check(!needURLs, "channel_properties", "is required for PAY_AND_SAVE, with success_return_url and failure_return_url")
		return
	}
	raw, _ := json.Marshal(props)
	if !v.Check(len(raw) <= maxChannelPropBytes, "channel_properties", fmt.Sprintf("must be at most %d bytes of JSON", maxChannelPropBytes)) {
		return
	}
	for _, name := range []string{"success_return_url", "failure_return_url"} {
		field := "channel_properties." + name
		val, ok := props[name]
		if !ok {
			v.Check(!needURLs, field, "is required for PAY_AND_SAVE: where the customer returns after the provider's page")
			continue
		}
		var s string
		if json.Unmarshal(val, &s) != nil || !validURL(s) {
			v.Add(field, "must be an absolute http or https URL of at most 2048 characters")
		}
	}
}

func validURL(s string) bool {
	if len(s) > maxURL {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// checkText checks a string field: not blank when required, valid UTF-8
// without control characters, at most max characters.
func checkText(v *billing.Validation, field string, s *string, required bool, max int) {
	switch {
	case s == nil || *s == "":
		v.Check(!required, field, "is required")
	case required && strings.TrimSpace(*s) == "":
		v.Add(field, "must not be blank")
	case !utf8.ValidString(*s):
		v.Add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(*s) > max:
		v.Add(field, fmt.Sprintf("must be at most %d characters", max))
	case strings.IndexFunc(*s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) >= 0:
		v.Add(field, "must not contain control characters")
	}
}

// SimulateParams is the body of POST /payment_requests/{id}/simulate:
// Xendit's {amount}, the amount the simulated customer pays (by default
// the request's). A test amount (21110, …) makes the payment fail.
type SimulateParams struct {
	Amount *billing.Number `json:"amount"`
}

// DecodeSimulate reads a simulate body; an empty body means the request's
// own amount.
func DecodeSimulate(body []byte) (SimulateParams, error) {
	var p SimulateParams
	if len(bytes.TrimSpace(body)) == 0 {
		return p, nil
	}
	if err := billing.DecodeJSON(body, &p, false); err != nil {
		return p, err
	}
	if p.Amount != nil && p.Amount.Sign() <= 0 {
		return p, billing.Invalid("amount", "must be greater than 0")
	}
	return p, nil
}
