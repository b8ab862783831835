package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tagihan/billing/internal/notify"
)

// config is everything the engine reads from the environment. Every
// variable is documented in docs/operations.md.
type config struct {
	// DatabaseURL is DATABASE_URL; empty means discover (SPEC §2).
	DatabaseURL string
	// HTTPAddr is HTTP_ADDR, the API's listen address. Defaults to
	// "127.0.0.1:8080".
	HTTPAddr string
	// DataDir is DATA_DIR, where the private cluster and the sandbox key
	// file live. Defaults to ".data".
	DataDir string
	// LogLevel is LOG_LEVEL: debug, info, warn or error. Defaults to info.
	LogLevel slog.Level
	// RateLimit is RATE_LIMIT_RPS, requests per second per API key per
	// process. Defaults to 100.
	RateLimit float64
	// RateBurst is RATE_LIMIT_BURST. Defaults to 200.
	RateBurst int
	// DBMaxConns is DB_MAX_CONNS, the connection pool's size. Defaults to 20.
	DBMaxConns int32
	// Workers is WORKERS, the River jobs worked at once per process.
	// Defaults to 50.
	Workers int
	// PublicBaseURL is PUBLIC_BASE_URL, the address providers and
	// customers reach the engine at (https://billing.example.com); needed
	// to register WooshPay webhook endpoints, and the start of plans' AUTH
	// links (without it, the address of the API request). Empty by default.
	PublicBaseURL string
	// XenditBaseURL is XENDIT_BASE_URL, Xendit's API. Defaults to
	// https://api.xendit.co.
	XenditBaseURL string
	// WooshPayBaseURL is WOOSHPAY_BASE_URL, WooshPay's API for every key.
	// Defaults to WooshPay's test host for sk_test_ keys and its live host
	// for sk_live_ keys.
	WooshPayBaseURL string
	// ShutdownTimeout is SHUTDOWN_TIMEOUT, how long a stopping engine waits
	// for requests and jobs in flight. Defaults to 30s.
	ShutdownTimeout time.Duration
	// Outbound is what webhooks and notifications read.
	Outbound outboundConfig
}

func configFromEnv(getenv func(string) string) (config, error) {
	c := config{
		DatabaseURL:     getenv("DATABASE_URL"),
		HTTPAddr:        "127.0.0.1:8080",
		DataDir:         ".data",
		LogLevel:        slog.LevelInfo,
		RateLimit:       100,
		RateBurst:       200,
		DBMaxConns:      20,
		Workers:         50,
		ShutdownTimeout: 30 * time.Second,
	}
	if v := getenv("HTTP_ADDR"); v != "" {
		c.HTTPAddr = v
	}
	if v := getenv("DATA_DIR"); v != "" {
		c.DataDir = v
	}
	for _, u := range []struct {
		name string
		dst  *string
	}{{"PUBLIC_BASE_URL", &c.PublicBaseURL}, {"XENDIT_BASE_URL", &c.XenditBaseURL}, {"WOOSHPAY_BASE_URL", &c.WooshPayBaseURL}} {
		v := getenv(u.name)
		if v == "" {
			continue
		}
		if p, err := url.Parse(v); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return c, fmt.Errorf("%s: must be an http or https URL such as https://billing.example.com", u.name)
		}
		*u.dst = v
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("LOG_LEVEL: must be debug, info, warn or error")
		}
	}
	var err error
	if c.RateLimit, err = floatVar(getenv, "RATE_LIMIT_RPS", c.RateLimit); err != nil {
		return c, err
	}
	if c.RateBurst, err = intVar(getenv, "RATE_LIMIT_BURST", c.RateBurst); err != nil {
		return c, err
	}
	conns, err := intVar(getenv, "DB_MAX_CONNS", int(c.DBMaxConns))
	if err != nil {
		return c, err
	}
	c.DBMaxConns = int32(conns)
	if c.Workers, err = intVar(getenv, "WORKERS", c.Workers); err != nil {
		return c, err
	}
	if v := getenv("SHUTDOWN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("SHUTDOWN_TIMEOUT: must be a positive duration such as 30s")
		}
		c.ShutdownTimeout = d
	}
	if err := c.Outbound.fromEnv(getenv); err != nil {
		return c, err
	}
	return c, nil
}

func intVar(getenv func(string) string, name string, def int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: must be a positive integer", name)
	}
	return n, nil
}

func floatVar(getenv func(string) string, name string, def float64) (float64, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("%s: must be a positive number", name)
	}
	return f, nil
}

func (c config) clusterDir() string { return filepath.Join(c.DataDir, "postgres") }

// outboundConfig is the configuration of webhooks and notifications.
type outboundConfig struct {
	// PrivateURLs is WEBHOOK_PRIVATE_URLS: "none" (the default: no business
	// may send webhooks to loopback, private or link-local addresses) or
	// "sandbox" (sandbox businesses may, for receivers on a developer's
	// machine or network).
	PrivateURLs string
	// SMTP is SMTP_URL with SMTP_FROM, the sender of e-mail
	// notifications; nil when SMTP_URL is unset (e-mails are skipped).
	SMTP *notify.SMTPConfig
	// WhatsAppGatewayURL and SMSGatewayURL are WHATSAPP_GATEWAY_URL and
	// SMS_GATEWAY_URL; empty means the channel is skipped.
	WhatsAppGatewayURL string
	SMSGatewayURL      string
}

func (o *outboundConfig) fromEnv(getenv func(string) string) error {
	switch o.PrivateURLs = getenv("WEBHOOK_PRIVATE_URLS"); o.PrivateURLs {
	case "":
		o.PrivateURLs = "none"
	case "none", "sandbox":
	default:
		return fmt.Errorf("WEBHOOK_PRIVATE_URLS: must be none or sandbox")
	}
	if v := getenv("SMTP_URL"); v != "" {
		smtp, err := notify.ParseSMTPURL(v, getenv("SMTP_FROM"))
		if err != nil {
			return fmt.Errorf("SMTP_URL: %w", err)
		}
		o.SMTP = smtp
	} else if getenv("SMTP_FROM") != "" {
		return fmt.Errorf("SMTP_FROM: set SMTP_URL too, or e-mails are not sent")
	}
	for _, g := range []struct {
		name string
		dst  *string
	}{{"WHATSAPP_GATEWAY_URL", &o.WhatsAppGatewayURL}, {"SMS_GATEWAY_URL", &o.SMSGatewayURL}} {
		v := getenv(g.name)
		if v == "" {
			continue
		}
		if p, err := url.Parse(v); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return fmt.Errorf("%s: must be an http or https URL such as https://gateway.example.com/messages", g.name)
		}
		*g.dst = v
	}
	return nil
}
