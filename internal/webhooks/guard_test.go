package webhooks_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/webhooks"
)

func TestPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.215.14": true, "8.8.8.8": true, "2606:4700:4700::1111": true,
		"127.0.0.1": false, "127.8.9.10": false, "10.0.0.1": false, "172.16.5.4": false, "192.168.1.1": false,
		"169.254.169.254": false, "0.0.0.0": false, "100.64.0.1": false, "224.0.0.1": false, "255.255.255.255": false,
		"192.0.2.1": false, "198.18.0.1": false, "240.0.0.1": false,
		"::1": false, "::": false, "fe80::1": false, "fc00::1": false, "fd12:3456::1": false, "ff02::1": false,
		"::ffff:10.0.0.1": false, "::ffff:127.0.0.1": false, "::ffff:8.8.8.8": true,
		"64:ff9b::a00:1": false, "2002:a00:1::1": false, "2001:db8::1": false,
	} {
		if got := webhooks.Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

// TestCheckURL applies the outbound-safety rules at creation: live
// endpoints must be https and reach only public addresses, names included.
func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	dns := map[string][]netip.Addr{
		"hooks.example.com":    {netip.MustParseAddr("93.184.215.14")},
		"loopback.example.com": {netip.MustParseAddr("127.0.0.1")},
		"private.example.com":  {netip.MustParseAddr("10.0.0.1")},
		"v6.example.com":       {netip.MustParseAddr("::1")},
		"mixed.example.com":    {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("192.168.0.10")},
	}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		if a, ok := dns[host]; ok {
			return a, nil
		}
		return nil, context.DeadlineExceeded
	}
	strict := &webhooks.Guard{LookupFunc: lookup}
	open := &webhooks.Guard{AllowPrivateSandbox: true, LookupFunc: lookup}

	refusedLive := []string{
		"http://127.0.0.1/hook", "http://10.0.0.1/hook", "http://[::1]/hook",
		"https://127.0.0.1/hook", "https://10.0.0.1/hook", "https://[::1]:8443/hook", "https://169.254.169.254/latest",
		"https://[::ffff:127.0.0.1]/", "https://0.0.0.0/", "https://localhost/hook", "https://api.localhost/hook", "https://intranet/hook",
		"https://loopback.example.com/hook", "https://private.example.com/hook", "https://v6.example.com/hook", "https://mixed.example.com/hook",
		"http://hooks.example.com/hook", "https://unknown.example.com/hook", "ftp://hooks.example.com/", "hooks.example.com/hook",
		"https://user:pass@hooks.example.com/hook", "https://hooks.example.com/hook#frag", "https://hooks.example.com:99999/", "",
	}
	for _, u := range refusedLive {
		for _, g := range []*webhooks.Guard{strict, open} {
			if _, err := g.CheckURL(ctx, "url", u, false); billing.CodeOf(err) != billing.EINVALID {
				t.Errorf("live %q: err = %v, want a validation error", u, err)
			} else if e, _ := billing.AsError(err); e.Fields[0].Field != "url" {
				t.Errorf("live %q: field %q", u, e.Fields[0].Field)
			}
		}
	}
	for _, u := range []string{"https://hooks.example.com/hook", "https://93.184.215.14/hook", "https://hooks.example.com:8443/a?b=c", "https://[2606:4700:4700::1111]/"} {
		if got, err := strict.CheckURL(ctx, "url", u, false); err != nil || got != u {
			t.Errorf("live %q: %q, %v", u, got, err)
		}
	}
	// Sandbox: http is fine, private addresses only when allowed.
	for _, u := range []string{"http://hooks.example.com/hook", "https://hooks.example.com/hook"} {
		if _, err := strict.CheckURL(ctx, "url", u, true); err != nil {
			t.Errorf("sandbox %q: %v", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:9000/hook", "http://10.0.0.1/hook", "http://[::1]/hook", "http://localhost:3000/hook", "http://loopback.example.com/"} {
		if _, err := strict.CheckURL(ctx, "url", u, true); err == nil || !strings.Contains(err.Error(), "WEBHOOK_PRIVATE_URLS") {
			t.Errorf("sandbox without WEBHOOK_PRIVATE_URLS %q: %v", u, err)
		}
		if _, err := open.CheckURL(ctx, "url", u, true); err != nil {
			t.Errorf("sandbox with WEBHOOK_PRIVATE_URLS=sandbox %q: %v", u, err)
		}
	}
}

// TestDeliveryRefusesNonPublicAddresses checks the rules again when a
// delivery connects: a live endpoint whose name resolved to a public
// address at creation and to loopback later (DNS rebinding), and one whose
// stored URL is a loopback address, never reach the receiver listening
// there; the attempt is logged as refused.
func TestDeliveryRefusesNonPublicAddresses(t *testing.T) {
	w := newWorld(t)
	rcv := newReceiver(t)
	live := w.business(business.ModeLive)
	port := rcv.srv.Listener.Addr().(interface{ String() string }).String()
	_, port, _ = strings.Cut(port, ":")

	w.resolve("rebind.example.com", "93.184.215.14")
	rebind := w.endpoint(live, "https://rebind.example.com:"+port+"/hook")
	w.resolve("rebind.example.com", "127.0.0.1")

	// A URL that the API would refuse, stored as if it had been allowed.
	direct := w.endpoint(live, "https://93.184.215.14/hook")
	if _, err := w.db.Bun.NewRaw("UPDATE webhook_endpoints SET url = ? WHERE id = ?", rcv.srv.URL+"/hook", direct.ID).Exec(w.ctx); err != nil {
		t.Fatal(err)
	}

	ev := w.emit(live, "invoice.paid", map[string]any{"invoice_id": "inv-1"})
	if n := w.dispatchAndRun(live); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
	if got := rcv.requests(); len(got) != 0 {
		t.Fatalf("the receiver on a loopback address got %d requests", len(got))
	}
	ds := w.deliveries(ev.ID)
	if len(ds) != 2 {
		t.Fatalf("%d deliveries", len(ds))
	}
	targets := map[string]bool{}
	for _, d := range ds {
		targets[d.WebhookEndpointID] = true
		if d.Status != webhooks.DeliveryPending || len(d.Attempts) != 1 {
			t.Fatalf("delivery %+v", d)
		}
		a := d.Attempts[0]
		if a.StatusCode != nil || a.Error == nil || !strings.Contains(*a.Error, "not public") || a.Succeeded {
			t.Fatalf("attempt to %s: %+v (error %v)", d.WebhookEndpointID, a, a.Error)
		}
	}
	if !targets[rebind.ID] || !targets[direct.ID] {
		t.Fatalf("deliveries went to %v", targets)
	}
}
