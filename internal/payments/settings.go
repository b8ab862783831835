package payments

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/providers"
	"github.com/uptrace/bun"
)

// settingsRow is a row of provider_settings.
type settingsRow struct {
	bun.BaseModel `bun:"table:provider_settings"`

	BusinessID                string    `bun:"business_id,pk"`
	Provider                  string    `bun:"provider"`
	XenditSecretKey           *string   `bun:"xendit_secret_key"`
	XenditCallbackToken       *string   `bun:"xendit_callback_token"`
	XenditCallbackTokenHash   []byte    `bun:"xendit_callback_token_hash"`
	WooshPaySecretKey         *string   `bun:"wooshpay_secret_key"`
	WooshPayWebhookSecret     *string   `bun:"wooshpay_webhook_secret"`
	WooshPayWebhookEndpointID *string   `bun:"wooshpay_webhook_endpoint_id"`
	Created                   time.Time `bun:"created"`
	Updated                   time.Time `bun:"updated"`
}

func (r *settingsRow) config(biz *business.Business) providers.Config {
	cfg := providers.Config{BusinessID: biz.ID, Active: providers.Name(r.Provider), Sandbox: biz.Sandbox()}
	if r.XenditSecretKey != nil && r.XenditCallbackToken != nil {
		cfg.Xendit = &providers.XenditCredentials{SecretKey: *r.XenditSecretKey, CallbackToken: *r.XenditCallbackToken}
	}
	if r.WooshPaySecretKey != nil && r.WooshPayWebhookSecret != nil {
		cfg.WooshPay = &providers.WooshPayCredentials{SecretKey: *r.WooshPaySecretKey, WebhookSecret: *r.WooshPayWebhookSecret}
		if r.WooshPayWebhookEndpointID != nil {
			cfg.WooshPay.WebhookEndpointID = *r.WooshPayWebhookEndpointID
		}
	}
	return cfg
}

func (s *Service) settingsRow(ctx context.Context, db bun.IDB, businessID string, forUpdate bool) (*settingsRow, error) {
	row := new(settingsRow)
	q := db.NewSelect().Model(row).Where("business_id = ?", businessID)
	if forUpdate {
		q = q.For("UPDATE")
	}
	err := q.Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read provider settings: %w", err)
	}
	return row, nil
}

// config returns the business's provider configuration. A sandbox business
// that configured nothing uses the sandbox; a live one has no active
// provider.
func (s *Service) config(ctx context.Context, db bun.IDB, biz *business.Business) (providers.Config, error) {
	row, err := s.settingsRow(ctx, db, biz.ID, false)
	if err != nil {
		return providers.Config{}, err
	}
	if row == nil {
		cfg := providers.Config{BusinessID: biz.ID, Sandbox: biz.Sandbox()}
		if biz.Sandbox() {
			cfg.Active = providers.Sandbox
		}
		return cfg, nil
	}
	return row.config(biz), nil
}

// SettingsParams is the body of POST /provider_settings. Fields left out
// keep their stored value; the chosen provider must end up with all its
// credentials. Unknown fields are rejected.
type SettingsParams struct {
	Provider string          `json:"provider"`
	Xendit   *XenditParams   `json:"xendit"`
	WooshPay *WooshPayParams `json:"wooshpay"`
}

// XenditParams are a business's Xendit credentials.
type XenditParams struct {
	SecretKey     *string `json:"secret_key"`
	CallbackToken *string `json:"callback_token"`
}

// WooshPayParams are a business's WooshPay credentials. Without
// webhook_secret, the engine registers its callback endpoint with WooshPay
// (which needs PUBLIC_BASE_URL) and keeps the secret WooshPay returns.
type WooshPayParams struct {
	SecretKey     *string `json:"secret_key"`
	WebhookSecret *string `json:"webhook_secret"`
}

// SettingsView is the provider settings as the API shows them: which
// provider is used and which secrets are set, never the secrets.
type SettingsView struct {
	Provider *string       `json:"provider"`
	Xendit   *xenditView   `json:"xendit"`
	WooshPay *wooshPayView `json:"wooshpay"`
	Updated  *string       `json:"updated"`
}

type xenditView struct {
	SecretKeySet     bool   `json:"secret_key_set"`
	SecretKeyHint    string `json:"secret_key_hint"`
	CallbackTokenSet bool   `json:"callback_token_set"`
	CallbackPath     string `json:"callback_path"`
}

type wooshPayView struct {
	SecretKeySet      bool    `json:"secret_key_set"`
	SecretKeyHint     string  `json:"secret_key_hint"`
	WebhookSecretSet  bool    `json:"webhook_secret_set"`
	WebhookEndpointID *string `json:"webhook_endpoint_id"`
	CallbackPath      string  `json:"callback_path"`
}

// keyPrefixes are the kinds of secret key the engine accepts.
var keyPrefixes = []string{"xnd_development_", "xnd_production_", "sk_test_", "sk_live_"}

// hint shows the kind of a secret key (its known prefix), never any of
// the secret part.
func hint(s string) string {
	for _, p := range keyPrefixes {
		if strings.HasPrefix(s, p) {
			return p + "…"
		}
	}
	return "…"
}

func (s *Service) view(biz *business.Business, row *settingsRow) SettingsView {
	if row == nil {
		if biz.Sandbox() {
			return SettingsView{Provider: ptr(string(providers.Sandbox))}
		}
		return SettingsView{}
	}
	v := SettingsView{Provider: &row.Provider, Updated: ptr(billing.FormatTime(row.Updated))}
	if row.XenditSecretKey != nil {
		v.Xendit = &xenditView{SecretKeySet: true, SecretKeyHint: hint(*row.XenditSecretKey),
			CallbackTokenSet: row.XenditCallbackToken != nil, CallbackPath: "/callbacks/xendit"}
	}
	if row.WooshPaySecretKey != nil {
		v.WooshPay = &wooshPayView{SecretKeySet: true, SecretKeyHint: hint(*row.WooshPaySecretKey),
			WebhookSecretSet: row.WooshPayWebhookSecret != nil, WebhookEndpointID: row.WooshPayWebhookEndpointID,
			CallbackPath: wooshPayCallbackPath(biz.ID)}
	}
	return v
}

// wooshPayCallbackPath is the path WooshPay posts a business's events to:
// the business_id says whose webhook secret verifies them.
func wooshPayCallbackPath(businessID string) string {
	return "/callbacks/wooshpay?business_id=" + url.QueryEscape(businessID)
}

// Settings returns the business's provider settings.
func (s *Service) Settings(ctx context.Context, db bun.IDB, biz *business.Business) (SettingsView, error) {
	row, err := s.settingsRow(ctx, db, biz.ID, false)
	if err != nil {
		return SettingsView{}, err
	}
	return s.view(biz, row), nil
}

// SaveSettings reads a POST /provider_settings body and stores it in db (the
// request's transaction). Keys must be of the business's mode: test keys
// for a sandbox business, live keys for a live one, and a live business
// cannot use the sandbox provider.
func (s *Service) SaveSettings(ctx context.Context, db bun.IDB, biz *business.Business, now time.Time, body []byte) (SettingsView, error) {
	var p SettingsParams
	if err := billing.DecodeJSON(body, &p, true); err != nil {
		return SettingsView{}, err
	}
	row, err := s.settingsRow(ctx, db, biz.ID, true)
	if err != nil {
		return SettingsView{}, err
	}
	if row == nil {
		row = &settingsRow{BusinessID: biz.ID, Created: truncate(now)}
	}
	var v billing.Validation
	switch providers.Name(p.Provider) {
	case providers.Sandbox:
		v.Check(biz.Sandbox(), "provider", "sandbox is for sandbox businesses; a live business takes real money with xendit or wooshpay")
	case providers.Xendit, providers.WooshPay:
	case "":
		v.Add("provider", "is required: sandbox, xendit or wooshpay")
	default:
		v.Add("provider", "must be sandbox, xendit or wooshpay")
	}
	if p.Xendit != nil {
		setSecret(&v, &row.XenditSecretKey, p.Xendit.SecretKey, "xendit.secret_key", xenditKeyPrefix(biz))
		setSecret(&v, &row.XenditCallbackToken, p.Xendit.CallbackToken, "xendit.callback_token", "")
	}
	if p.WooshPay != nil {
		setSecret(&v, &row.WooshPaySecretKey, p.WooshPay.SecretKey, "wooshpay.secret_key", wooshPayKeyPrefix(biz))
		if p.WooshPay.WebhookSecret != nil {
			setSecret(&v, &row.WooshPayWebhookSecret, p.WooshPay.WebhookSecret, "wooshpay.webhook_secret", "")
			row.WooshPayWebhookEndpointID = nil
		}
	}
	switch providers.Name(p.Provider) {
	case providers.Xendit:
		v.Check(row.XenditSecretKey != nil, "xendit.secret_key", "is required to use xendit")
		v.Check(row.XenditCallbackToken != nil, "xendit.callback_token", "is required to use xendit: the webhook verification token of the Xendit dashboard")
	case providers.WooshPay:
		v.Check(row.WooshPaySecretKey != nil, "wooshpay.secret_key", "is required to use wooshpay")
	}
	if err := v.Err(); err != nil {
		return SettingsView{}, err
	}
	if providers.Name(p.Provider) == providers.WooshPay && row.WooshPayWebhookSecret == nil {
		if err := s.registerWooshPay(ctx, biz, row); err != nil {
			return SettingsView{}, err
		}
	}
	row.Provider = p.Provider
	row.XenditCallbackTokenHash = nil
	if row.XenditCallbackToken != nil {
		sum := sha256.Sum256([]byte(*row.XenditCallbackToken))
		row.XenditCallbackTokenHash = sum[:]
	}
	row.Updated = truncate(now)
	_, err = db.NewInsert().Model(row).On("CONFLICT (business_id) DO UPDATE").
		Set("provider = EXCLUDED.provider, xendit_secret_key = EXCLUDED.xendit_secret_key, " +
			"xendit_callback_token = EXCLUDED.xendit_callback_token, xendit_callback_token_hash = EXCLUDED.xendit_callback_token_hash, " +
			"wooshpay_secret_key = EXCLUDED.wooshpay_secret_key, wooshpay_webhook_secret = EXCLUDED.wooshpay_webhook_secret, " +
			"wooshpay_webhook_endpoint_id = EXCLUDED.wooshpay_webhook_endpoint_id, updated = EXCLUDED.updated").
		Exec(ctx)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return SettingsView{}, &billing.Error{Code: billing.ECONFLICT, Reason: billing.ReasonDuplicate,
			Message: "another business uses this Xendit callback token; each business needs its own Xendit account",
			Fields:  []billing.FieldError{{Field: "xendit.callback_token", Message: "is used by another business"}}}
	}
	if err != nil {
		return SettingsView{}, fmt.Errorf("store provider settings: %w", err)
	}
	return s.view(biz, row), nil
}

// setSecret validates a secret that was sent and stores it in dst.
func setSecret(v *billing.Validation, dst **string, val *string, field, prefix string) {
	if val == nil {
		return
	}
	s := *val
	switch {
	case strings.TrimSpace(s) == "" || len(s) > 500:
		v.Add(field, "must be 1 to 500 characters")
	case strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		v.Add(field, "must not contain spaces or control characters")
	case prefix != "" && !strings.HasPrefix(s, prefix):
		v.Add(field, "must start with "+prefix+" for this business")
	default:
		*dst = &s
	}
}

// xenditKeyPrefix is the kind of Xendit key a business may use: test keys
// for sandbox businesses, production keys for live ones.
func xenditKeyPrefix(biz *business.Business) string {
	if biz.Sandbox() {
		return "xnd_development_"
	}
	return "xnd_production_"
}

func wooshPayKeyPrefix(biz *business.Business) string {
	if biz.Sandbox() {
		return "sk_test_"
	}
	return "sk_live_"
}

// registerWooshPay registers the engine's callback endpoint with WooshPay
// and keeps the endpoint's signing secret in row.
func (s *Service) registerWooshPay(ctx context.Context, biz *business.Business, row *settingsRow) error {
	if s.cfg.PublicBaseURL == "" {
		return billing.Invalid("wooshpay.webhook_secret", "is required: this engine has no PUBLIC_BASE_URL to register its callback endpoint with WooshPay")
	}
	p, err := s.provider(string(providers.WooshPay))
	if err != nil {
		return err
	}
	reg, ok := p.(providers.WebhookRegistrar)
	if !ok {
		return fmt.Errorf("payments: provider %s cannot register webhooks", p.Name())
	}
	cfg := providers.Config{BusinessID: biz.ID, Sandbox: biz.Sandbox(), WooshPay: &providers.WooshPayCredentials{SecretKey: *row.WooshPaySecretKey}}
	id, secret, err := reg.RegisterWebhook(ctx, cfg, strings.TrimRight(s.cfg.PublicBaseURL, "/")+wooshPayCallbackPath(biz.ID))
	if err != nil {
		if e, ok := providers.AsError(err); ok && e.Kind == providers.KindInvalid {
			return billing.Invalid("wooshpay.secret_key", "was refused by WooshPay: "+e.Message)
		}
		return fmt.Errorf("register the WooshPay webhook endpoint: %w", err)
	}
	row.WooshPayWebhookSecret, row.WooshPayWebhookEndpointID = &secret, &id
	return nil
}
