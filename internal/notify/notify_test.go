package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/notify"
)

// TestEmailInEnglishAndIndonesian sends an ATTEMPT_FAILED message in both
// locales to a mail server started by the test, and checks the mails it
// received: sender, recipient, subject and the rendered bodies.
func TestEmailInEnglishAndIndonesian(t *testing.T) {
	w := newWorld(t)
	srv := startSMTP(t, nil)
	cfg, err := notify.ParseSMTPURL("smtp://"+srv.addr+"?tls=none", "PDAM Tirta Jaya <tagihan@pdam.example>")
	if err != nil {
		t.Fatal(err)
	}
	svc := w.service(notify.Config{SMTP: cfg})
	siti := w.siti()
	date := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	for _, locale := range []string{"en", "id"} {
		ns := w.queue(svc, notify.Message{BusinessID: w.biz.ID, CustomerID: siti.ID, PlanID: ptr("repl-1"), CycleID: ptr("recy-1"),
			Kind: notify.KindAttemptFailed, AttemptNumber: ptr(2), Channels: []notify.Channel{notify.ChannelEmail}, Locale: locale,
			Amount: idr(1500000), Date: &date, PaymentLink: ptr("https://pay.example/inv-7")})
		if len(ns) != 1 || ns[0].Status != notify.StatusQueued || *ns[0].Recipient != "siti@example.co.id" {
			t.Fatalf("queued %+v", ns)
		}
		if err := svc.Send(w.ctx, ns[0].ID); err != nil {
			t.Fatal(err)
		}
		n := w.get(ns[0].ID)
		if n.Status != notify.StatusSent || n.SentAt == nil || !n.SentAt.Equal(w.now()) || n.Tries != 1 {
			t.Fatalf("after sending: %+v", n)
		}
	}
	got := srv.received()
	if len(got) != 2 {
		t.Fatalf("the mail server got %d messages", len(got))
	}
	want := []struct{ subject, body string }{
		{"Your payment of IDR 1,500,000 did not go through",
			"Dear Siti Rahayu,\n\nWe could not charge IDR 1,500,000 for your bill of 5 March 2026 (attempt 2). " +
				"Please make sure your payment method has enough funds, or pay now: https://pay.example/inv-7\n\nPDAM Tirta Jaya"},
		{"Pembayaran Rp 1.500.000 gagal",
			"Yth. Siti Rahayu,\n\nKami tidak dapat menagih Rp 1.500.000 untuk tagihan 5 Maret 2026 (percobaan ke-2). " +
				"Pastikan saldo metode pembayaran Anda mencukupi, atau bayar sekarang: https://pay.example/inv-7\n\nSalam,\nPDAM Tirta Jaya"},
	}
	for i, m := range got {
		h, body := decoded(t, m.data)
		if m.from != "tagihan@pdam.example" || m.to != "siti@example.co.id" {
			t.Fatalf("envelope from %q to %q", m.from, m.to)
		}
		if s := subjectOf(t, h); s != want[i].subject {
			t.Errorf("subject %q, want %q", s, want[i].subject)
		}
		if strings.TrimSpace(body) != want[i].body {
			t.Errorf("body:\n%s\nwant:\n%s", body, want[i].body)
		}
		if !strings.HasPrefix(h.Get("Content-Type"), "text/plain") || !strings.Contains(h.Get("Message-Id"), "ntf-") ||
			!strings.HasPrefix(h.Get("X-Billing-Notification-Id"), "ntf-") {
			t.Errorf("headers %v", h)
		}
	}
}

// TestEmailOverStartTLSWithLogin: smtp:// upgrades with STARTTLS and logs
// in; a server that offers no STARTTLS is refused rather than sent the
// password in clear.
func TestEmailOverStartTLSWithLogin(t *testing.T) {
	w := newWorld(t)
	serverTLS, clientTLS := selfSigned(t)
	srv := startSMTP(t, func(s *smtpServer) { s.tls, s.user, s.password = serverTLS, "mailer", "p@ss word" })
	cfg, err := notify.ParseSMTPURL("smtp://mailer:p%40ss%20word@"+srv.addr, "tagihan@pdam.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig = clientTLS
	svc := w.service(notify.Config{SMTP: cfg})
	siti := w.siti()
	ns := w.queue(svc, notify.Message{BusinessID: w.biz.ID, CustomerID: siti.ID, Kind: notify.KindServiceReinstated,
		Channels: []notify.Channel{notify.ChannelEmail}, Locale: "id"})
	if err := svc.Send(w.ctx, ns[0].ID); err != nil {
		t.Fatal(err)
	}
	got := srv.received()
	if len(got) != 1 || !got[0].tls || got[0].authed != "mailer" {
		t.Fatalf("received %+v", got)
	}
	if _, body := decoded(t, got[0].data); !strings.Contains(body, "Layanan Anda telah dipulihkan.") {
		t.Fatalf("body %q", body)
	}

	plain := startSMTP(t, func(s *smtpServer) { s.user, s.password = "mailer", "p@ss word" })
	cfg2, _ := notify.ParseSMTPURL("smtp://mailer:p%40ss%20word@"+plain.addr, "tagihan@pdam.example")
	svc2 := w.service(notify.Config{SMTP: cfg2})
	ns = w.queue(svc2, notify.Message{BusinessID: w.biz.ID, CustomerID: siti.ID, Kind: notify.KindServiceReinstated,
		Channels: []notify.Channel{notify.ChannelEmail}})
	if err := svc2.Send(w.ctx, ns[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := w.get(ns[0].ID); n.Status != notify.StatusQueued || n.Tries != 1 || n.StatusReason == nil || len(plain.received()) != 0 {
		t.Fatalf("without STARTTLS: %+v, %d received", n, len(plain.received()))
	}
}

// TestSkippedNoChannel: a channel with no sender configured, or a customer
// with no address for it, is recorded as SKIPPED_NO_CHANNEL with the
// reason, never dropped; only the others are queued.
func TestSkippedNoChannel(t *testing.T) {
	w := newWorld(t)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer gw.Close()
	svc := w.service(notify.Config{SMSGatewayURL: gw.URL})
	siti := w.siti()
	noPhone := w.customer(map[string]any{"reference_id": "PDAM-2", "business_detail": map[string]any{"business_name": "PT Maju"}})
	all := []notify.Channel{notify.ChannelEmail, notify.ChannelWhatsApp, notify.ChannelSMS, notify.ChannelSMS}
	date := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	got := w.queue(svc, notify.Message{BusinessID: w.biz.ID, CustomerID: siti.ID, Kind: notify.KindCycleCreated, Channels: all, Date: &date})
	if len(got) != 3 {
		t.Fatalf("%d notifications for 3 distinct channels", len(got))
	}
	want := map[notify.Channel][2]string{
		notify.ChannelEmail:    {notify.StatusSkippedNoChannel, "no e-mail sender is configured (SMTP_URL)"},
		notify.ChannelWhatsApp: {notify.StatusSkippedNoChannel, "no WhatsApp gateway is configured (WHATSAPP_GATEWAY_URL)"},
		notify.ChannelSMS:      {notify.StatusQueued, ""},
	}
	for _, n := range got {
		stored := w.get(n.ID)
		reason := ""
		if stored.StatusReason != nil {
			reason = *stored.StatusReason
		}
		if stored.Status != want[n.Channel][0] || reason != want[n.Channel][1] || stored.Body == "" {
			t.Fatalf("%s: %s %q", n.Channel, stored.Status, reason)
		}
	}
	got = w.queue(svc, notify.Message{BusinessID: w.biz.ID, CustomerID: noPhone.ID, Kind: notify.KindServiceSuspended, Channels: []notify.Channel{notify.ChannelSMS}})
	if len(got) != 1 || got[0].Status != notify.StatusSkippedNoChannel || *got[0].StatusReason != "the customer has no mobile_number" ||
		got[0].Recipient != nil || !strings.HasPrefix(got[0].Body, "PDAM Tirta Jaya: Your service has been suspended") {
		t.Fatalf("no phone: %+v", got[0])
	}
	if n := w.queue(svc, notify.Message{BusinessID: w.biz.ID, CustomerID: siti.ID, Kind: notify.KindServiceSuspended}); len(n) != 0 {
		t.Fatal("a message with no channel recorded something")
	}
	list, _, err := notify.List(w.ctx, w.db.Bun, w.biz.ID, notify.Filter{CustomerID: noPhone.ID, Page: billing.Page{Limit: 10}})
	if err != nil || len(list) != 1 || list[0].ID != got[0].ID {
		t.Fatalf("list by customer: %v %v", list, err)
	}
}

func TestQueueRejectsBadMessages(t *testing.T) {
	w := newWorld(t)
	svc := w.service(notify.Config{})
	siti := w.siti()
	date := time.Now()
	for name, m := range map[string]notify.Message{
		"unknown kind":          {Kind: "CYCLE_EXPLODED", Channels: []notify.Channel{notify.ChannelSMS}},
		"unknown channel":       {Kind: notify.KindServiceSuspended, Channels: []notify.Channel{"PIGEON"}},
		"unknown locale":        {Kind: notify.KindServiceSuspended, Channels: []notify.Channel{notify.ChannelSMS}, Locale: "fr"},
		"no amount":             {Kind: notify.KindCycleSucceeded, Channels: []notify.Channel{notify.ChannelSMS}, Date: &date},
		"no date":               {Kind: notify.KindCycleCreated, Channels: []notify.Channel{notify.ChannelSMS}},
		"no attempt number":     {Kind: notify.KindAttemptFailed, Channels: []notify.Channel{notify.ChannelSMS}, Date: &date, Amount: idr(1)},
		"another's customer":    {Kind: notify.KindServiceSuspended, Channels: []notify.Channel{notify.ChannelSMS}, CustomerID: "cust-00000000-0000-7000-8000-000000000000"},
		"unsupported currency":  {Kind: notify.KindCycleFailed, Channels: []notify.Channel{notify.ChannelSMS}, Date: &date, Amount: &billing.Money{Currency: "EUR"}},
		"attempt number zero":   {Kind: notify.KindAttemptFailed, Channels: []notify.Channel{notify.ChannelSMS}, Date: &date, Amount: idr(1), AttemptNumber: ptr(0)},
		"without a customer id": {Kind: notify.KindServiceSuspended, Channels: []notify.Channel{notify.ChannelSMS}, CustomerID: "-"},
	} {
		m.BusinessID = w.biz.ID
		if m.CustomerID == "" {
			m.CustomerID = siti.ID
		} else if m.CustomerID == "-" {
			m.CustomerID = ""
		}
		if _, err := svc.Queue(w.ctx, w.db.Bun, w.now(), m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if n := w.count("SELECT count(*) FROM notifications WHERE business_id = ?", w.biz.ID); n != 0 {
		t.Fatalf("%d notifications stored from bad messages", n)
	}
}

// gatewayRequest is the documented JSON contract, decoded strictly so
// that an undocumented field fails the test.
type gatewayRequest struct {
	ID         string `json:"id"`
	Channel    string `json:"channel"`
	To         string `json:"to"`
	Locale     string `json:"locale"`
	Kind       string `json:"kind"`
	Body       string `json:"body"`
	BusinessID string `json:"business_id"`
	CustomerID string `json:"customer_id"`
}

type gateway struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	got    []gatewayRequest
	keys   []string
	bad    []string
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{}
	g.status.Store(202)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.URL.Path != "/send" {
			g.bad = append(g.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		}
		raw, _ := io.ReadAll(r.Body)
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		var req gatewayRequest
		if err := dec.Decode(&req); err != nil {
			g.bad = append(g.bad, err.Error())
		}
		g.got = append(g.got, req)
		g.keys = append(g.keys, r.Header.Get("Idempotency-Key"))
		w.WriteHeader(int(g.status.Load()))
		_, _ = w.Write([]byte(`{"message_id":"gw-1"}`))
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) requests() ([]gatewayRequest, []string, []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gatewayRequest(nil), g.got...), append([]string(nil), g.keys...), append([]string(nil), g.bad...)
}

// TestGatewayContract sends a WhatsApp and an SMS message and checks each
// request against the documented contract.
func TestGatewayContract(t *testing.T) {
	w := newWorld(t)
	wa, sms := newGateway(t), newGateway(t)
	svc := w.service(notify.Config{WhatsAppGatewayURL: wa.srv.URL + "/send", SMSGatewayURL: sms.srv.URL + "/send"})
	siti := w.siti()
	date := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	ns := w.queue(svc, notify.Message{BusinessID: w.biz.ID, CustomerID: siti.ID, Kind: notify.KindCycleSucceeded, Locale: "id",
		Channels: []notify.Channel{notify.ChannelWhatsApp, notify.ChannelSMS}, Amount: idr(150000), Date: &date})
	for _, n := range ns {
		if err := svc.Send(w.ctx, n.ID); err != nil {
			t.Fatal(err)
		}
		if got := w.get(n.ID); got.Status != notify.StatusSent || got.Subject != nil {
			t.Fatalf("%s: %+v", n.Channel, got)
		}
	}
	wantBody := "PDAM Tirta Jaya: Pembayaran Anda sebesar Rp 150.000 untuk tagihan 5 Maret 2026 telah kami terima. Terima kasih."
	for i, g := range []*gateway{wa, sms} {
		reqs, keys, bad := g.requests()
		if len(bad) > 0 || len(reqs) != 1 {
			t.Fatalf("gateway %d: %d requests, contract violations %v", i, len(reqs), bad)
		}
		want := gatewayRequest{ID: ns[i].ID, Channel: string(ns[i].Channel), To: "+6281234567890", Locale: "id", Kind: "CYCLE_SUCCEEDED",
			Body: wantBody, BusinessID: w.biz.ID, CustomerID: siti.ID}
		if reqs[0] != want || keys[0] != ns[i].ID {
			t.Fatalf("gateway %d got %+v (key %q), want %+v", i, reqs[0], keys[0], want)
		}
	}
}

// TestGatewayRetriesThenFails: a gateway that answers 500 is tried again
// on the schedule of the business's clock with the same idempotency key;
// after MaxTries the notification is FAILED and notification.failed is
// emitted. A 400 fails at once.
func TestGatewayRetriesThenFails(t *testing.T) {
	w := newWorld(t)
	g := newGateway(t)
	g.status.Store(500)
	svc := w.service(notify.Config{SMSGatewayURL: g.srv.URL + "/send"})
	siti := w.siti()
	ns := w.queue(svc, notify.Message{BusinessID: w.biz.ID, CustomerID: siti.ID, Kind: notify.KindServiceSuspended, Channels: []notify.Channel{notify.ChannelSMS}})
	id := ns[0].ID
	start := w.now()
	delays := []time.Duration{time.Minute, 5 * time.Minute, 25 * time.Minute, 125 * time.Minute}
	for i := 0; i < notify.MaxTries; i++ {
		if n, err := svc.SendDue(w.ctx, w.biz.ID); err != nil || n != 1 {
			t.Fatalf("try %d: %d sent, %v", i+1, n, err)
		}
		if n, _ := svc.SendDue(w.ctx, w.biz.ID); n != 0 {
			t.Fatalf("try %d: tried again before it was due", i+1)
		}
		n := w.get(id)
		if n.Tries != i+1 {
			t.Fatalf("tries %d, want %d", n.Tries, i+1)
		}
		if i < len(delays) {
			at, ok, err := svc.NextDue(w.ctx, w.biz.ID)
			if err != nil || !ok || !at.Equal(w.now().Add(delays[i])) || n.Status != notify.StatusQueued {
				t.Fatalf("after try %d: %+v next %s %v", i+1, n, at, err)
			}
			w.advance(delays[i])
		}
	}
	n := w.get(id)
	if n.Status != notify.StatusFailed || n.NextTryAt != nil || !strings.Contains(*n.StatusReason, "gateway answered 500") {
		t.Fatalf("after %d tries: %+v", notify.MaxTries, n)
	}
	_, keys, _ := g.requests()
	for _, k := range keys {
		if k != id {
			t.Fatalf("idempotency keys %v", keys)
		}
	}
	var data []byte
	if err := w.db.Bun.NewRaw("SELECT data FROM events WHERE business_id = ? AND type = 'notification.failed'", w.biz.ID).Scan(w.ctx, &data); err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(data, &ev); err != nil || ev["id"] != id || ev["status"] != "FAILED" || ev["tries"] != float64(notify.MaxTries) {
		t.Fatalf("notification.failed data %s", data)
	}
	if total := w.now().Sub(start); total != 156*time.Minute {
		t.Fatalf("failed after %s", total)
	}

	g.status.Store(400)
	ns = w.queue(svc, notify.Message{BusinessID: w.biz.ID, CustomerID: siti.ID, Kind: notify.KindServiceSuspended, Channels: []notify.Channel{notify.ChannelSMS}})
	if err := svc.Send(w.ctx, ns[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := w.get(ns[0].ID); n.Status != notify.StatusFailed || n.Tries != 1 {
		t.Fatalf("after a 400: %+v", n)
	}
	if c := w.count("SELECT count(*) FROM events WHERE business_id = ? AND type = 'notification.failed'", w.biz.ID); c != 2 {
		t.Fatalf("%d notification.failed events, want 2", c)
	}
}

// TestSendIsOnceAcrossProcesses: concurrent sends of one notification (two
// engine processes with a job each) reach the gateway once.
func TestSendIsOnceAcrossProcesses(t *testing.T) {
	w := newWorld(t)
	g := newGateway(t)
	svc := w.service(notify.Config{WhatsAppGatewayURL: g.srv.URL + "/send"})
	ns := w.queue(svc, notify.Message{BusinessID: w.biz.ID, CustomerID: w.siti().ID, Kind: notify.KindServiceReinstated, Channels: []notify.Channel{notify.ChannelWhatsApp}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.Send(context.Background(), ns[0].ID); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if reqs, _, _ := g.requests(); len(reqs) != 1 {
		t.Fatalf("the gateway got %d requests", len(reqs))
	}
}
