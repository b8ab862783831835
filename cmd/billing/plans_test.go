package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/pgtest"
)

// TestServePlanActivation runs the engine as billing serve does: a plan
// without a token gets an AUTH link on PUBLIC_BASE_URL; the customer saves
// a payment method on that page with the sandbox; the sandbox's callback,
// delivered by the River job the wiring enqueues, activates the plan
// through the payment service's SettledFunc.
func TestServePlanActivation(t *testing.T) {
	_, dbURL := pgtest.Fresh(t)
	bin := buildBinary(t)
	addr := freeAddr(t)
	public := "http://" + addr + "/billing-public"
	env := []string{"DATABASE_URL=" + dbURL, "HTTP_ADDR=" + addr, "DATA_DIR=" + t.TempDir(), "PUBLIC_BASE_URL=" + public}
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
	plan := call("POST", "/recurring/plans", map[string]any{"reference_id": "plan-1", "customer_id": cust["id"], "currency": "IDR", "amount": 50000,
		"schedule": map[string]any{"reference_id": "s-1", "interval": "MONTH", "interval_count": 1, "anchor_date": "2026-01-20T08:00:00Z"}})
	authURL := plan["actions"].([]any)[0].(map[string]any)["url"].(string)
	if plan["status"] != "REQUIRES_ACTION" || !strings.HasPrefix(authURL, public+"/authorize/auth_") {
		t.Fatalf("plan: %v", plan)
	}
	// The page is served at the engine's own path (a proxy would strip the
	// public prefix).
	page := "http://" + e.addr + strings.TrimPrefix(authURL, public)
	for _, step := range []struct {
		path string
		form url.Values
	}{{"", url.Values{"channel_code": {"DANA"}}}, {"/simulate", url.Values{"outcome": {"complete"}}}} {
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.PostForm(page+step.path, step.form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != authURL {
			t.Fatalf("POST %s: %d to %q", step.path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := call("GET", "/recurring/plans/"+plan["id"].(string), nil)
		if got["status"] == "ACTIVE" {
			cycles := call("GET", "/recurring/plans/"+plan["id"].(string)+"/cycles", nil)["data"].([]any)
			if len(cycles) != 1 || got["recurring_cycle_count"] != float64(1) {
				t.Fatalf("cycles %v", cycles)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plan did not activate within 20s: %v\n%s", got, e.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
