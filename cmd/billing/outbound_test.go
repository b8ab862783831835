package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/notify"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/uptrace/bun"
)

func TestOutboundConfig(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	c, err := configFromEnv(get)
	if err != nil || c.Outbound.PrivateURLs != "none" || c.Outbound.SMTP != nil || c.Outbound.SMSGatewayURL != "" || c.Outbound.WhatsAppGatewayURL != "" {
		t.Fatalf("defaults: %+v %v", c.Outbound, err)
	}
	env = map[string]string{"WEBHOOK_PRIVATE_URLS": "sandbox", "SMTP_URL": "smtps://u:p@smtp.example.com", "SMTP_FROM": "Tagihan <billing@example.com>",
		"WHATSAPP_GATEWAY_URL": "https://gw.example.com/wa", "SMS_GATEWAY_URL": "http://gw.internal:8080/sms"}
	c, err = configFromEnv(get)
	if err != nil || c.Outbound.PrivateURLs != "sandbox" || c.Outbound.SMTP == nil || c.Outbound.SMTP.Port != 465 ||
		c.Outbound.WhatsAppGatewayURL != "https://gw.example.com/wa" || c.Outbound.SMSGatewayURL != "http://gw.internal:8080/sms" {
		t.Fatalf("set: %+v %v", c.Outbound, err)
	}
	for _, bad := range []map[string]string{
		{"WEBHOOK_PRIVATE_URLS": "all"},
		{"SMTP_URL": "smtp://smtp.example.com"},
		{"SMTP_URL": "mail.example.com", "SMTP_FROM": "a@example.com"},
		{"SMTP_FROM": "a@example.com"},
		{"WHATSAPP_GATEWAY_URL": "gw.example.com"},
		{"SMS_GATEWAY_URL": "ftp://gw.example.com"},
	} {
		env = bad
		var name string
		for k := range bad {
			name = k
		}
		if _, err := configFromEnv(get); err == nil || (!strings.Contains(err.Error(), name) && !strings.Contains(err.Error(), "SMTP_")) {
			t.Errorf("%v: err = %v", bad, err)
		}
	}
}

// TestServeSendsWebhooksAndNotifications runs the engine as billing serve
// does and checks its wiring end to end: an event committed by any
// transaction reaches a webhook endpoint, and a queued SMS reaches the
// gateway, within seconds (woken by the commit, not the 15-second sweep).
func TestServeSendsWebhooksAndNotifications(t *testing.T) {
	db, dbURL := pgtest.Fresh(t)
	bin := buildBinary(t)
	dataDir := t.TempDir()
	keyFile := filepath.Join(dataDir, "sandbox-api-key")

	var mu sync.Mutex
	var hooks, sms []string
	record := func(into *[]string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			var v struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(body, &v)
			mu.Lock()
			*into = append(*into, v.ID)
			mu.Unlock()
		}
	}
	receiver := httptest.NewServer(record(&hooks))
	defer receiver.Close()
	gateway := httptest.NewServer(record(&sms))
	defer gateway.Close()

	env := []string{"DATABASE_URL=" + dbURL, "HTTP_ADDR=" + freeAddr(t), "DATA_DIR=" + dataDir,
		"WEBHOOK_PRIVATE_URLS=sandbox", "SMS_GATEWAY_URL=" + gateway.URL}
	e := startEngine(t, bin, env, "--sandbox-key-file", keyFile)
	defer e.stop(t)
	key := regexp.MustCompile(`(?m)^sk_test_[0-9A-Za-z]{43}$`).FindString(e.stdout.String())
	post := func(path string, body any) map[string]any {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", "http://"+e.addr+path, bytes.NewReader(raw))
		req.SetBasicAuth(key, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %v %v", path, resp.StatusCode, out, err)
		}
		return out
	}
	post("/webhook_endpoints", map[string]any{"url": receiver.URL, "enabled_events": []string{"*"}})
	cust := post("/customers", map[string]any{"reference_id": "c-1", "individual_detail": map[string]any{"given_names": "Ani"}, "mobile_number": "+6281200000001"})

	ctx := context.Background()
	var bizID string
	if err := db.Bun.NewRaw("SELECT id FROM businesses").Scan(ctx, &bizID); err != nil {
		t.Fatal(err)
	}
	biz, err := business.Get(ctx, db.Bun, bizID)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := outbox.Emit(ctx, db.Bun, bizID, outbox.CustomerServiceSuspended, biz.Clock().Now(), map[string]any{"customer_id": cust["id"]})
	if err != nil {
		t.Fatal(err)
	}
	var queued []*notify.Notification
	err = db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		svc := notify.New(notify.Config{DB: db.Bun, SMSGatewayURL: gateway.URL})
		queued, err = svc.Queue(ctx, tx, biz.Clock().Now(), notify.Message{BusinessID: bizID, CustomerID: cust["id"].(string),
			Kind: notify.KindServiceSuspended, Channels: []notify.Channel{notify.ChannelSMS}})
		return err
	})
	if err != nil || len(queued) != 1 {
		t.Fatal(err)
	}
	deadline := time.Now().Add(8 * time.Second)
	for {
		mu.Lock()
		done := len(hooks) == 1 && hooks[0] == ev.ID && len(sms) == 1 && sms[0] == queued[0].ID
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("within 8s the endpoint got %v (want %s) and the gateway %v\n%s", hooks, ev.ID, sms, e.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
