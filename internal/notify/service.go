package notify

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/tagihan/billing"
	"github.com/uptrace/bun"
)

// DefaultTimeout bounds one send: an SMTP conversation or a gateway
// request.
const DefaultTimeout = 10 * time.Second

// Config configures a Service. A channel whose sender is not configured
// records its notifications as SKIPPED_NO_CHANNEL.
type Config struct {
	// DB is the engine's database.
	DB *bun.DB
	// Clock is the system clock: the clock of live businesses and of
	// leases. Sandbox businesses schedule retries by their own clock.
	// Defaults to billing.SystemClock.
	Clock billing.Clock
	// SMTP sends EMAIL notifications (SMTP_URL, SMTP_FROM); nil means no
	// e-mail.
	SMTP *SMTPConfig
	// WhatsAppGatewayURL and SMSGatewayURL receive WHATSAPP and SMS
	// notifications as JSON POSTs (docs/notifications.md); empty means no
	// such channel.
	WhatsAppGatewayURL string
	SMSGatewayURL      string
	// Timeout bounds one send. Defaults to DefaultTimeout (10 s).
	Timeout time.Duration
	// HTTPClient sends gateway requests. Defaults to a client with no proxy
	// and Timeout.
	HTTPClient *http.Client
	// Logger receives what the service cannot return. Defaults to
	// discarding.
	Logger *slog.Logger
}

// Service queues and sends notifications.
type Service struct {
	db      *bun.DB
	clock   billing.Clock
	cfg     Config
	http    *http.Client
	timeout time.Duration
	log     *slog.Logger
}

// New returns a Service for cfg.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = billing.SystemClock{}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}}
	}
	return &Service{db: cfg.DB, clock: cfg.Clock, cfg: cfg, http: hc, timeout: cfg.Timeout, log: cfg.Logger}
}

// configured reports whether this engine has a sender for ch.
func (s *Service) configured(ch Channel) bool {
	switch ch {
	case ChannelEmail:
		return s.cfg.SMTP != nil
	case ChannelWhatsApp:
		return s.cfg.WhatsAppGatewayURL != ""
	case ChannelSMS:
		return s.cfg.SMSGatewayURL != ""
	}
	return false
}
