package notify_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/tagihan/billing/internal/notify"
)

// smtpServer is a mail server inside the test that keeps what it is sent.
type smtpServer struct {
	addr      string
	user      string // required login, or "" for none
	password  string
	tls       *tls.Config
	mu        sync.Mutex
	messages  []smtpMessage
	rejectAll bool // answer every message 554
}

type smtpMessage struct {
	from, to string
	data     []byte
	tls      bool
	authed   string
}

func startSMTP(t *testing.T, configure func(*smtpServer)) *smtpServer {
	t.Helper()
	s := &smtpServer{}
	if configure != nil {
		configure(s)
	}
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.TLSConfig = s.tls
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *smtpServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{srv: s, conn: c}, nil
}

func (s *smtpServer) received() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.messages...)
}

type smtpSession struct {
	srv      *smtpServer
	conn     *smtp.Conn
	from, to string
	authed   string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != s.srv.user || pass != s.srv.password {
			return errors.New("bad credentials")
		}
		s.authed = user
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.user != "" && s.authed == "" {
		return &smtp.SMTPError{Code: 530, Message: "authentication required"}
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = to; return nil }

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.srv.rejectAll {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected"}
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.messages = append(s.srv.messages, smtpMessage{from: s.from, to: s.to, data: data, tls: isTLS, authed: s.authed})
	s.srv.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        {}
func (s *smtpSession) Logout() error { return nil }

// decoded parses a received message and returns its headers and its text
// body, decoded from its transfer encoding.
func decoded(t *testing.T, raw []byte) (mail.Header, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not an e-mail: %v\n%s", err, raw)
	}
	var body io.Reader = m.Body
	switch strings.ToLower(m.Header.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		body = quotedprintable.NewReader(m.Body)
	case "base64":
		t.Fatalf("unexpected base64 body")
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return m.Header, strings.ReplaceAll(string(b), "\r\n", "\n")
}

func subjectOf(t *testing.T, h mail.Header) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// selfSigned returns a server certificate for 127.0.0.1 and a client
// config that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func TestParseSMTPURL(t *testing.T) {
	for raw, want := range map[string]notify.SMTPConfig{
		"smtp://apikey:s%40cret@smtp.example.com":  {Host: "smtp.example.com", Port: 587, Username: "apikey", Password: "s@cret", TLS: notify.TLSStartTLS},
		"smtps://u:p@smtp.example.com":             {Host: "smtp.example.com", Port: 465, Username: "u", Password: "p", TLS: notify.TLSImplicit},
		"smtp://smtp.example.com:2525":             {Host: "smtp.example.com", Port: 2525, TLS: notify.TLSStartTLS},
		"smtp://localhost:25?tls=none":             {Host: "localhost", Port: 25, TLS: notify.TLSNone},
		"smtp://relay@127.0.0.1:1025?tls=none":     {Host: "127.0.0.1", Port: 1025, Username: "relay", TLS: notify.TLSNone},
		"smtps://[2001:db8::25]:465":               {Host: "2001:db8::25", Port: 465, TLS: notify.TLSImplicit},
		"smtp://mailer:pw@mail.example.co.id:587/": {Host: "mail.example.co.id", Port: 587, Username: "mailer", Password: "pw", TLS: notify.TLSStartTLS},
	} {
		got, err := notify.ParseSMTPURL(raw, "Tagihan <billing@example.com>")
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		want.From = "Tagihan <billing@example.com>"
		if *got != want {
			t.Errorf("%s: %+v, want %+v", raw, *got, want)
		}
	}
	for _, raw := range []string{"", "smtp://", "http://smtp.example.com", "smtp://u:p@localhost:25?tls=none", "smtps://h?tls=none",
		"smtp://h?tls=maybe", "smtp://h?auth=plain", "smtp://h:0", "smtp://h:70000", "not a url"} {
		if _, err := notify.ParseSMTPURL(raw, "billing@example.com"); err == nil {
			t.Errorf("%q was accepted", raw)
		}
	}
	if _, err := notify.ParseSMTPURL("smtp://h", ""); err == nil {
		t.Error("a missing SMTP_FROM was accepted")
	}
	if _, err := notify.ParseSMTPURL("smtp://h", "not an address"); err == nil {
		t.Error("a bad SMTP_FROM was accepted")
	}
}
