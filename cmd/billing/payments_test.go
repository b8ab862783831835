package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/pgtest"
)

func TestPaymentsConfigFromEnv(t *testing.T) {
	env := map[string]string{"PUBLIC_BASE_URL": "https://billing.example", "XENDIT_BASE_URL": "http://127.0.0.1:9999", "WOOSHPAY_BASE_URL": "https://apitest.wooshpay.com"}
	c, err := configFromEnv(func(k string) string { return env[k] })
	if err != nil || c.PublicBaseURL != "https://billing.example" || c.XenditBaseURL != "http://127.0.0.1:9999" || c.WooshPayBaseURL != "https://apitest.wooshpay.com" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, k := range []string{"PUBLIC_BASE_URL", "XENDIT_BASE_URL", "WOOSHPAY_BASE_URL"} {
		for _, bad := range []string{"billing.example", "ftp://x", "https://"} {
			env = map[string]string{k: bad}
			if _, err := configFromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("%s=%s: err = %v", k, bad, err)
			}
		}
	}
}

// TestServePayAndSave runs the engine as billing serve does and saves a
// payment method in a sandbox business through the API: the sandbox's
// callbacks reach the engine through the River jobs the wiring enqueues.
func TestServePayAndSave(t *testing.T) {
	_, dbURL := pgtest.Fresh(t)
	bin := buildBinary(t)
	env := []string{"DATABASE_URL=" + dbURL, "HTTP_ADDR=" + freeAddr(t), "DATA_DIR=" + t.TempDir()}
	e := startEngine(t, bin, env)
	defer e.stop(t)

	create := exec.Command(bin, "business", "create", "--name", "Tirta", "--mode", "sandbox")
	create.Env = env
	out, err := create.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	key := lines[len(lines)-1]
	call := func(method, path string, body any) map[string]any {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, "http://"+e.addr+path, rd)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.SetBasicAuth(key, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return m
	}
	cust := call("POST", "/customers", map[string]any{"reference_id": "PDAM-1", "individual_detail": map[string]any{"given_names": "Siti"}})
	pr := call("POST", "/payment_requests", map[string]any{"reference_id": "link-1", "type": "PAY_AND_SAVE", "customer_id": cust["id"],
		"country": "ID", "currency": "IDR", "request_amount": 150000, "channel_code": "DANA",
		"channel_properties": map[string]any{"success_return_url": "https://tirta.example/ok", "failure_return_url": "https://tirta.example/no"}})
	id := pr["payment_request_id"].(string)
	call("POST", "/payment_requests/"+id+"/simulate", nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := call("GET", "/payment_requests/"+id, nil)
		if got["status"] == "SUCCEEDED" {
			tok := call("GET", "/payment_tokens/"+got["payment_token_id"].(string), nil)
			if tok["status"] != "ACTIVE" {
				t.Fatalf("token %v", tok)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the linking did not succeed within 20s: %v\n%s", got, e.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
