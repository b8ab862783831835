package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strconv"

	"github.com/wneessen/go-mail"
)

// TLS modes of an SMTP connection.
const (
	// TLSStartTLS upgrades the connection with STARTTLS, and refuses a
	// server that does not offer it (smtp://, the default).
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the start (smtps://, usually port 465).
	TLSImplicit = "implicit"
	// TLSNone sends in clear (smtp://…?tls=none): only for a relay on the
	// same host or a test server, and never with a password.
	TLSNone = "none"
)

// SMTPConfig is where and how EMAIL notifications are sent.
type SMTPConfig struct {
	Host     string
	Port     int
	Username string
	Password string
	// TLS is TLSStartTLS, TLSImplicit or TLSNone.
	TLS string
	// From is the sender, "Name <address>" or an address.
	From string
	// TLSConfig overrides the TLS settings (tests trust their own
	// certificate with it). Nil means the system's roots.
	TLSConfig *tls.Config
}

// ParseSMTPURL reads SMTP_URL and SMTP_FROM:
// smtp://user:password@host:587 (STARTTLS required; port 587 by default),
// smtps://user:password@host:465 (implicit TLS; port 465 by default), or
// smtp://host:25?tls=none (no TLS and no password: a local relay). User and
// password are optional and percent-encoded. from is the sender address,
// "Billing <billing@example.com>" or "billing@example.com".
func ParseSMTPURL(raw, from string) (*SMTPConfig, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("must be a URL such as smtp://user:password@smtp.example.com:587")
	}
	c := &SMTPConfig{Host: u.Hostname(), From: from}
	switch u.Scheme {
	case "smtp":
		c.TLS, c.Port = TLSStartTLS, 587
	case "smtps":
		c.TLS, c.Port = TLSImplicit, 465
	default:
		return nil, errors.New("must start with smtp:// (STARTTLS) or smtps:// (TLS)")
	}
	q := u.Query()
	for k := range q {
		if k != "tls" {
			return nil, fmt.Errorf("has an unknown parameter %q (only tls=none is known)", k)
		}
	}
	switch q.Get("tls") {
	case "":
	case TLSNone:
		if u.Scheme != "smtp" {
			return nil, errors.New("tls=none goes with smtp://, not smtps://")
		}
		c.TLS = TLSNone
	default:
		return nil, errors.New("tls must be none when given")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, errors.New("has an invalid port")
		}
		c.Port = n
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	if c.TLS == TLSNone && c.Password != "" {
		return nil, errors.New("must not carry a password with tls=none: it would travel in clear")
	}
	if from == "" {
		return nil, errors.New("needs SMTP_FROM, the sender address, such as \"Billing <billing@example.com>\"")
	}
	if _, err := netmail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("SMTP_FROM %q is not an e-mail address", from)
	}
	return c, nil
}

// sendEmail sends n over SMTP. The Message-ID is derived from the
// notification's id, so that a resend after a lost answer carries the same
// one and mail systems can tell it is a duplicate.
func (s *Service) sendEmail(ctx context.Context, n *Notification) error {
	c := s.cfg.SMTP
	opts := []mail.Option{mail.WithPort(c.Port), mail.WithTimeout(s.timeout), mail.WithHELO("localhost")}
	switch c.TLS {
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if c.TLSConfig != nil {
		opts = append(opts, mail.WithTLSConfig(c.TLSConfig))
	}
	if c.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(c.Username), mail.WithPassword(c.Password))
	}
	client, err := mail.NewClient(c.Host, opts...)
	if err != nil {
		return permanent(fmt.Errorf("smtp settings: %w", err))
	}
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := m.From(c.From); err != nil {
		return permanent(fmt.Errorf("sender %q: %w", c.From, err))
	}
	if err := m.To(*n.Recipient); err != nil {
		return permanent(fmt.Errorf("recipient is not a valid e-mail address: %w", err))
	}
	m.Subject(deref(n.Subject))
	m.SetMessageIDWithValue(n.ID + "@notifications.billing")
	m.SetDateWithValue(s.clock.Now())
	m.SetGenHeader("X-Billing-Notification-Id", n.ID)
	m.SetBodyString(mail.TypeTextPlain, n.Body)
	err = client.DialAndSendWithContext(ctx, m)
	if err == nil {
		return nil
	}
	var se *mail.SendError
	if errors.As(err, &se) && !se.IsTemp() {
		switch se.Reason {
		case mail.ErrSMTPMailFrom, mail.ErrSMTPRcptTo, mail.ErrSMTPData, mail.ErrSMTPDataClose:
			// The server answered the message with a permanent (5xx) refusal.
			return permanent(fmt.Errorf("the mail server refused the message: %w", err))
		}
	}
	return fmt.Errorf("smtp: %w", err)
}
