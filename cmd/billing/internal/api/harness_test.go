package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/cmd/billing/internal/api"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/payments"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/uptrace/bun"
	"golang.org/x/time/rate"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bundle is one test's world: a running API server and a sandbox business
// of its own (so tests never see each other's rows).
type bundle struct {
	t      *testing.T
	db     *postgres.DB
	srv    *httptest.Server
	api    *api.Server
	biz    *business.Business
	key    string
	clock  *billing.SettableClock // the system clock the server sees
	client *http.Client
}

// sandboxStart is when each test's sandbox business is created.
var sandboxStart = time.Date(2026, 1, 31, 23, 59, 59, 0, time.UTC)

type options struct {
	rateLimit rate.Limit
	rateBurst int
	wrap      func(http.Handler) http.Handler
	logger    *slog.Logger
	payments  func(db *postgres.DB, clock billing.Clock) *payments.Service
	// configure changes the server's configuration last.
	configure func(cfg *api.Config)
}

func setup(t *testing.T, opts ...func(*options)) *bundle {
	t.Helper()
	o := options{rateLimit: 1000, rateBurst: 1000}
	for _, f := range opts {
		f(&o)
	}
	db := pgtest.New(t)
	clock := billing.NewSettableClock(sandboxStart)
	cfg := api.Config{DB: db, Clock: clock, RateLimit: o.rateLimit, RateBurst: o.rateBurst, Logger: o.logger}
	if o.payments != nil {
		cfg.Payments = o.payments(db, clock)
	}
	if o.configure != nil {
		o.configure(&cfg)
	}
	s := api.New(cfg)
	var h http.Handler = s.Handler()
	if o.wrap != nil {
		h = o.wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	biz, key, err := business.Create(context.Background(), db.Bun, clock, business.CreateParams{Name: t.Name(), Mode: business.ModeSandbox})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{t: t, db: db, srv: srv, api: s, biz: biz, key: key, clock: clock, client: srv.Client()}
	t.Cleanup(b.checkInvoiceInvariants) // after every scenario (SPEC §8)
	return b
}

// newBusiness creates another business and returns its key.
func (b *bundle) newBusiness(mode business.Mode) (*business.Business, string) {
	b.t.Helper()
	biz, key, err := business.Create(context.Background(), b.db.Bun, b.clock, business.CreateParams{Name: b.t.Name() + " other", Mode: mode})
	if err != nil {
		b.t.Fatal(err)
	}
	return biz, key
}

// response is a decoded API response.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// call sends a request with the bundle's key; headers are pairs of name
// and value. A body that is a string or []byte is sent as is, anything else
// as JSON.
func (b *bundle) call(method, path string, body any, headers ...string) response {
	b.t.Helper()
	return b.callWithKey(b.key, method, path, body, headers...)
}

func (b *bundle) callWithKey(key, method, path string, body any, headers ...string) response {
	b.t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(v))
	case []byte:
		rd = bytes.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			b.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.srv.URL+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 && raw[0] == '{' {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&r.body); err != nil {
			b.t.Fatalf("%s %s: response is not JSON: %s", method, path, raw)
		}
	}
	return r
}

// wantError checks an error response: status, error_code and, when field is
// not empty, that errors[] names it.
func (r response) wantError(t *testing.T, status int, code, field string) {
	t.Helper()
	if r.status != status || r.body["error_code"] != code {
		t.Fatalf("got %d %s, want %d %s", r.status, r.raw, status, code)
	}
	if msg, _ := r.body["message"].(string); msg == "" {
		t.Fatalf("error without a message: %s", r.raw)
	}
	if field == "" {
		return
	}
	errs, _ := r.body["errors"].([]any)
	for _, e := range errs {
		if e.(map[string]any)["field"] == field {
			return
		}
	}
	t.Fatalf("errors do not name %q: %s", field, r.raw)
}

// count returns how many rows of table belong to the bundle's business.
func (b *bundle) count(table string) int {
	b.t.Helper()
	var n int
	if err := b.db.Bun.NewRaw("SELECT count(*) FROM ? WHERE business_id = ?", bun.Ident(table), b.biz.ID).Scan(context.Background(), &n); err != nil {
		b.t.Fatal(err)
	}
	return n
}
