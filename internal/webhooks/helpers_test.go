package webhooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"github.com/tagihan/billing/internal/webhooks"
	"github.com/uptrace/bun"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// world is one test's database, system clock and webhook service.
type world struct {
	t     *testing.T
	ctx   context.Context
	db    *postgres.DB
	clock *billing.SettableClock // the system clock
	svc   *webhooks.Service
	// hosts is the test's DNS: host name → addresses.
	hosts sync.Map
}

func newWorld(t *testing.T, configure ...func(*webhooks.Config)) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), db: pgtest.New(t), clock: billing.NewSettableClock(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))}
	cfg := webhooks.Config{DB: w.db.Bun, Clock: w.clock, Timeout: 2 * time.Second,
		Guard: webhooks.Guard{AllowPrivateSandbox: true, LookupFunc: w.lookup}}
	for _, f := range configure {
		f(&cfg)
	}
	w.svc = webhooks.New(cfg)
	return w
}

func (w *world) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	if v, ok := w.hosts.Load(host); ok {
		return v.([]netip.Addr), nil
	}
	return nil, &net404{host}
}

type net404 struct{ host string }

func (e *net404) Error() string { return "no such host " + e.host }

// resolve makes host resolve to addrs in the test's DNS.
func (w *world) resolve(host string, addrs ...string) {
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	w.hosts.Store(host, as)
}

func (w *world) business(mode business.Mode) *business.Business {
	w.t.Helper()
	biz, _, err := business.Create(w.ctx, w.db.Bun, w.clock, business.CreateParams{Name: w.t.Name(), Mode: mode})
	if err != nil {
		w.t.Fatal(err)
	}
	return biz
}

// now reads the business's clock as stored.
func (w *world) now(biz *business.Business) time.Time {
	w.t.Helper()
	b, err := business.Get(w.ctx, w.db.Bun, biz.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return b.Clock().Now()
}

// advance moves a sandbox business's clock to t.
func (w *world) advance(biz *business.Business, to time.Time) {
	w.t.Helper()
	if _, err := business.AdvanceClock(w.ctx, w.db.Bun, biz.ID, business.ClockAdvance{To: &to}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) endpoint(biz *business.Business, url string, events ...string) *webhooks.Endpoint {
	w.t.Helper()
	if len(events) == 0 {
		events = []string{webhooks.AllEvents}
	}
	var e *webhooks.Endpoint
	err := w.db.Bun.RunInTx(w.ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		e, err = w.svc.CreateEndpoint(ctx, tx, biz, webhooks.CreateParams{URL: url, EnabledEvents: events})
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return e
}

// emit writes an event as the features do, in a transaction of its own.
func (w *world) emit(biz *business.Business, eventType string, data map[string]any) *outbox.Event {
	w.t.Helper()
	ev, err := outbox.Emit(w.ctx, w.db.Bun, biz.ID, eventType, w.now(biz), data)
	if err != nil {
		w.t.Fatal(err)
	}
	return ev
}

// dispatchAndRun does what the jobs do: dispatch, then send what is due.
func (w *world) dispatchAndRun(biz *business.Business) int {
	w.t.Helper()
	if _, err := w.svc.Dispatch(w.ctx); err != nil {
		w.t.Fatal(err)
	}
	n, err := w.svc.RunDue(w.ctx, biz.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *world) deliveries(eventID string) []webhooks.DeliveryView {
	w.t.Helper()
	var biz string
	if err := w.db.Bun.NewRaw("SELECT business_id FROM events WHERE id = ?", eventID).Scan(w.ctx, &biz); err != nil {
		w.t.Fatal(err)
	}
	ds, _, err := webhooks.ListDeliveries(w.ctx, w.db.Bun, biz, eventID, billing.Page{Limit: 100})
	if err != nil {
		w.t.Fatal(err)
	}
	return ds
}

func (w *world) count(query string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.db.Bun.NewRaw(query, args...).Scan(w.ctx, &n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
	id     string // the envelope's id
	event  string
}

// receiver is a webhook endpoint under the test's control.
type receiver struct {
	srv    *httptest.Server
	status atomic.Int32 // the status it answers; 200 by default
	hang   chan struct{}
	mu     sync.Mutex
	got    []received
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{hang: make(chan struct{})}
	r.status.Store(200)
	r.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var env struct {
			ID    string `json:"id"`
			Event string `json:"event"`
		}
		_ = json.Unmarshal(body, &env)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body, id: env.ID, event: env.Event})
		r.mu.Unlock()
		status := int(r.status.Load())
		if status == 0 {
			select {
			case <-r.hang:
			case <-req.Context().Done():
			}
			return
		}
		rw.WriteHeader(status)
		_, _ = rw.Write([]byte(`{"received":` + strconv.Itoa(status) + `}`))
	}))
	t.Cleanup(func() {
		close(r.hang)
		r.srv.Close()
	})
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// ids counts the event ids received.
func (r *receiver) ids() map[string]int {
	out := map[string]int{}
	for _, g := range r.requests() {
		out[g.id]++
	}
	return out
}

// verify checks a request's webhook-signature the way a receiver would,
// written here from the documented rule rather than with webhooks.Sign:
// t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>"> with the endpoint's
// secret, and t within five minutes of now.
func verify(header http.Header, body []byte, secret string, now time.Time) bool {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header.Get("webhook-signature"), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return false
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	io.WriteString(mac, ts+"."+string(body))
	want := mac.Sum(nil)
	for _, s := range sigs {
		got, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}
