package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/tagihan/billing/cmd/billing/internal/api"
	"github.com/tagihan/billing/internal/business"
	"github.com/tagihan/billing/internal/pgtest"
	"github.com/tagihan/billing/internal/postgres"
	"golang.org/x/time/rate"
)

// openAPIPath is docs/openapi.yaml, from this package's directory.
var openAPIPath = filepath.Join("..", "..", "..", "..", "docs", "openapi.yaml")

// openAPINotExercised lists the documented responses the scenario of
// TestOpenAPIResponses cannot provoke, with the reason.
var openAPINotExercised = map[string]string{
	"GET /metrics 500": "a Prometheus collector failing cannot be arranged from the API",
}

// loadOpenAPI loads and validates the document (examples included) and
// returns it with a router over its paths.
func loadOpenAPI(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(openAPIPath)
	if err != nil {
		t.Fatalf("load %s: %v", openAPIPath, err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", openAPIPath, err)
	}
	// The document's server is the engine's default address; the tests' server
	// listens elsewhere, so route on paths alone.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// openAPIPathOf turns a net/http pattern path into an OpenAPI path
// template: "/a/{id...}" becomes "/a/{id}" and a trailing "{$}" goes.
func openAPIPathOf(pattern string) string {
	pattern = strings.TrimSuffix(pattern, "{$}")
	return strings.ReplaceAll(pattern, "...}", "}")
}

// openAPIOperations returns the document's operations as "METHOD /path".
func openAPIOperations(doc *openapi3.T) map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op
		}
	}
	return ops
}

func TestOpenAPIRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	ops := openAPIOperations(doc)
	served := map[string]bool{}
	for _, rt := range api.New(api.Config{}).Routes() {
		method, pattern, ok := strings.Cut(rt, " ")
		if !ok {
			t.Fatalf("route %q is not METHOD /path", rt)
		}
		key := method + " " + openAPIPathOf(pattern)
		served[key] = true
		if ops[key] == nil {
			t.Errorf("the server has %s but %s does not describe it", rt, openAPIPath)
		}
	}
	for key := range ops {
		if !served[key] {
			t.Errorf("%s describes %s, which the server does not have", openAPIPath, key)
		}
	}

	// Conventions every operation must document (SPEC §3).
	for key, op := range ops {
		method, path, _ := strings.Cut(key, " ")
		ops := path == "/healthz" || path == "/readyz" || path == "/metrics"
		// Provider callbacks carry no API key (the provider's token or
		// signature verifies them), no idempotency-key and no rate limit;
		// nor do the plans' AUTH pages and the invoices' pay pages (HTML for
		// the customer's browser, authorized by the secret in their path).
		callback := strings.HasPrefix(path, "/callbacks/")
		page := strings.HasPrefix(path, "/authorize/") || strings.HasPrefix(path, "/pay/")
		if (ops || callback || page) != (op.Security != nil && len(*op.Security) == 0) {
			t.Errorf("%s: only /healthz, /readyz, /metrics, /callbacks/…, /authorize/… and /pay/… are without security", key)
		}
		for status, ref := range op.Responses.Map() {
			if ref.Value.Headers["request-id"] == nil {
				t.Errorf("%s %s: no request-id header", key, status)
			}
		}
		want := []string{}
		switch {
		case callback:
			want = append(want, "400", "401", "413", "500")
		case page:
			want = append(want, "404", "500")
		case !ops:
			want = append(want, "401", "429", "500")
		}
		if !callback && !page && (method == http.MethodPost || method == http.MethodPatch) {
			want = append(want, "400", "409", "413", "415")
			if p := op.Parameters.GetByInAndName("header", "idempotency-key"); p == nil {
				t.Errorf("%s: no idempotency-key parameter", key)
			}
			if op.RequestBody == nil || op.RequestBody.Value.Content.Get("application/json") == nil {
				t.Errorf("%s: no JSON request body", key)
			}
		}
		for _, status := range want {
			if op.Responses.Value(status) == nil {
				t.Errorf("%s: no %s response", key, status)
			}
		}
	}
}

// openAPIChecker validates responses against the document: each one's
// status must be documented for its operation, and its headers and body
// must match. The request of every 2xx response must match the document
// too, so that the documented request schemas accept what the server does.
// Requests no operation matches (unknown paths, other methods) must be the
// NotFound or MethodNotAllowed responses of components.
type openAPIChecker struct {
	doc    *openapi3.T
	router routers.Router
	fail   func(format string, args ...any)

	mu   sync.Mutex
	seen map[string]bool // "METHOD /path STATUS" and "METHOD /path STATUS ERROR_CODE"
	n    int             // responses checked
}

func newOpenAPIChecker(t *testing.T) *openAPIChecker {
	doc, router := loadOpenAPI(t)
	return &openAPIChecker{doc: doc, router: router, fail: t.Errorf, seen: map[string]bool{}}
}

// wrap is the setup hook: it records each response, checks it, and only
// then sends it on.
func (c *openAPIChecker) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody, err := io.ReadAll(r.Body)
		if err != nil {
			c.fail("openapi: read request body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if err := c.check(r, reqBody, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			c.fail("openapi: %s %s answered %d, which %s does not allow: %v\nbody: %.2000s", r.Method, r.URL.RequestURI(), rec.Code, openAPIPath, err, rec.Body.Bytes())
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

func (c *openAPIChecker) record(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	for _, k := range keys {
		c.seen[k] = true
	}
}

// findRoute is the router's FindRoute made exact: kin-openapi's legacy
// router also matches a trailing slash and an empty path parameter
// ("PATCH /customers" as "PATCH /customers/{id}"), which net/http does not.
func (c *openAPIChecker) findRoute(r *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		return nil, nil, err
	}
	got, want := strings.Split(r.URL.Path, "/"), strings.Split(route.Path, "/")
	if len(got) != len(want) {
		return nil, nil, routers.ErrPathNotFound
	}
	for i, seg := range want {
		if strings.HasPrefix(seg, "{") {
			if got[i] == "" {
				return nil, nil, routers.ErrPathNotFound
			}
		} else if got[i] != seg {
			return nil, nil, routers.ErrPathNotFound
		}
	}
	return route, params, nil
}

// check validates one exchange.
func (c *openAPIChecker) check(r *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	ctx := context.Background()
	var code string
	if strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		var env struct {
			ErrorCode string `json:"error_code"`
		}
		_ = json.Unmarshal(body, &env)
		code = env.ErrorCode
	}
	route, params, err := c.findRoute(r)
	if err != nil {
		// No operation: an unknown path must be NotFound, and a known path
		// with another method MethodNotAllowed, whose Allow header lists the
		// path's documented methods.
		var methods []string
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			probe := r.Clone(ctx)
			probe.Method = m
			if _, _, err := c.findRoute(probe); err == nil {
				methods = append(methods, m)
			}
		}
		var name string
		switch {
		case len(methods) == 0 && status == http.StatusNotFound:
			name = "NotFound"
		case len(methods) > 0 && status == http.StatusMethodNotAllowed:
			name = "MethodNotAllowed"
			allow := strings.Split(header.Get("Allow"), ", ")
			slices.Sort(allow)
			slices.Sort(methods)
			if !slices.Equal(allow, methods) {
				return fmt.Errorf("header Allow is %q, but the document has %v for this path", header.Get("Allow"), methods)
			}
		default:
			return fmt.Errorf("no documented operation (%v; the path has %v)", err, methods)
		}
		ref := c.doc.Components.Responses[name]
		route = &routers.Route{Spec: c.doc, Path: r.URL.Path, Method: r.Method,
			Operation: &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(status, ref))}}
		c.record("unrouted "+name, "unrouted "+name+" "+code)
	} else {
		op := route.Method + " " + route.Path + " " + strconv.Itoa(status)
		c.record(op, op+" "+code)
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, SkipSettingDefaults: true}}
	if status >= 200 && status < 300 {
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Errorf("the request succeeded but does not match the document: %w", err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(ctx, out)
}

// errorCodes returns the error_code values a documented response allows,
// from the most specific enum in its schema (allOf parts override the shared
// Error schema), or nil when the body is not an error.
func errorCodes(resp *openapi3.Response) []string {
	mt := resp.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	var find func(s *openapi3.Schema) []string
	find = func(s *openapi3.Schema) []string {
		for i := len(s.AllOf) - 1; i >= 0; i-- {
			if codes := find(s.AllOf[i].Value); codes != nil {
				return codes
			}
		}
		if p := s.Properties["error_code"]; p != nil && len(p.Value.Enum) > 0 {
			var codes []string
			for _, v := range p.Value.Enum {
				codes = append(codes, fmt.Sprint(v))
			}
			return codes
		}
		return nil
	}
	return find(mt.Schema.Value)
}

// checkCoverage fails for every documented response (and every error_code
// a response allows) that no exchange produced.
func (c *openAPIChecker) checkCoverage(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing []string
	want := func(key string, resp *openapi3.Response) {
		if _, ok := openAPINotExercised[key]; ok {
			return
		}
		if !c.seen[key] {
			missing = append(missing, key)
			return
		}
		for _, code := range errorCodes(resp) {
			if !c.seen[key+" "+code] {
				missing = append(missing, key+" "+code)
			}
		}
	}
	for key, op := range openAPIOperations(c.doc) {
		for status, ref := range op.Responses.Map() {
			want(key+" "+status, ref.Value)
		}
	}
	for _, name := range []string{"NotFound", "MethodNotAllowed"} {
		want("unrouted "+name, c.doc.Components.Responses[name].Value)
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("the scenario never produced the documented response %s", m)
	}
	t.Logf("%d responses checked against %s", c.n, openAPIPath)
}

// openAPIEnv is what the scenarios of TestOpenAPIResponses share.
type openAPIEnv struct {
	b                 *bundle
	liveKey, otherKey string
	// big is a body over the size limit.
	big string
}

// ok requires a 200.
func (e *openAPIEnv) ok(t *testing.T, r response, what string) response {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d %s", what, r.status, r.raw)
	}
	return r
}

// openAPIScenario exercises the endpoints of one feature. Each feature's
// test file registers its own in an init function, so that features do not
// edit one shared function.
type openAPIScenario struct {
	name string
	run  func(t *testing.T, e *openAPIEnv)
	// calls has one request per API endpoint of the feature ({method, path,
	// body}), sent again to see 429 (rate limit) and 500 (no database).
	calls [][3]string
	// unlimited has one request per endpoint without an API key or rate
	// limit (provider callbacks), sent again only to see 500: {method, path,
	// body, header name, header value, …}.
	unlimited [][]string
	// pages has one request per HTML page ({method, path, form body}),
	// sent again only to see its 500, an HTML page.
	pages [][3]string
}

var openAPIScenarios []openAPIScenario

func TestOpenAPIResponses(t *testing.T) {
	c := newOpenAPIChecker(t)
	withChecker := func(o *options) { o.wrap = c.wrap }
	b := setup(t, withChecker)
	e := &openAPIEnv{b: b, big: `{"reference_id":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`}
	_, e.liveKey = b.newBusiness(business.ModeLive)
	_, e.otherKey = b.newBusiness(business.ModeSandbox)

	e.ok(t, b.callWithKey("", "GET", "/healthz", nil), "healthz")
	e.ok(t, b.callWithKey("", "GET", "/readyz", nil), "readyz")
	e.ok(t, b.callWithKey("", "GET", "/metrics", nil), "metrics")
	var apiCalls, pageCalls [][3]string
	var unlimitedCalls [][]string
	for _, sc := range openAPIScenarios {
		sc.run(t, e)
		apiCalls = append(apiCalls, sc.calls...)
		unlimitedCalls = append(unlimitedCalls, sc.unlimited...)
		pageCalls = append(pageCalls, sc.pages...)
	}

	// Requests no operation matches.
	b.call("GET", "/nowhere", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("GET", "/customers/cust-00000000-0000-7000-8000-000000000000/nowhere", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	b.call("GET", "/customers/", nil).wantError(t, 404, "DATA_NOT_FOUND", "")
	for _, mp := range [][2]string{{"DELETE", "/customers"}, {"PUT", "/customers/cust-00000000-0000-7000-8000-000000000000"}, {"POST", "/healthz"}, {"GET", "/sandbox/clock/advance"}} {
		b.call(mp[0], mp[1], nil).wantError(t, 405, "METHOD_NOT_ALLOWED", "")
	}

	// 429 on every API endpoint, with a budget of one request per key.
	limited := setup(t, withChecker, func(o *options) { o.rateLimit = rate.Limit(0.001); o.rateBurst = 1 })
	e.ok(t, limited.call("GET", "/sandbox/clock", nil), "first request within the budget")
	for _, call := range apiCalls {
		var body any
		if call[2] != "" {
			body = call[2]
		}
		limited.call(call[0], call[1], body).wantError(t, 429, "RATE_LIMIT_EXCEEDED", "")
	}

	// 500 on every API endpoint, and 503 from /readyz, from a server whose
	// database is gone.
	ctx := context.Background()
	gone, err := postgres.Open(ctx, pgtest.URL(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	gone.Close()
	broken := api.New(api.Config{DB: gone, Clock: b.clock})
	brokenSrv := httptest.NewServer(c.wrap(broken.Handler()))
	t.Cleanup(brokenSrv.Close)
	bb := &bundle{t: t, srv: brokenSrv, key: b.key, client: brokenSrv.Client(), clock: b.clock}
	for _, call := range apiCalls {
		unlimitedCalls = append(unlimitedCalls, call[:])
	}
	for _, call := range unlimitedCalls {
		var body any
		if call[2] != "" {
			body = call[2]
		}
		bb.call(call[0], call[1], body, call[3:]...).wantError(t, 500, "SERVER_ERROR", "")
	}
	for _, call := range pageCalls {
		req, err := http.NewRequest(call[0], brokenSrv.URL+call[1], strings.NewReader(call[2]))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := brokenSrv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s %s without a database: %d %s", call[0], call[1], resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if r := bb.callWithKey("", "GET", "/readyz", nil); r.status != http.StatusServiceUnavailable || r.body["status"] != "not_ready" {
		t.Fatalf("readyz without a database: %d %s", r.status, r.raw)
	}
	e.ok(t, bb.callWithKey("", "GET", "/healthz", nil), "healthz without a database")

	c.checkCoverage(t)
}

// TestOpenAPIValidatorRejects shows that the checker fails responses that
// break the document, so that TestOpenAPIResponses can fail.
func TestOpenAPIValidatorRejects(t *testing.T) {
	doc, router := loadOpenAPI(t)
	var failures []string
	c := &openAPIChecker{doc: doc, router: router, seen: map[string]bool{},
		fail: func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) }}

	good := map[string]any{
		"id": "cust-0194f1c2-7b3a-7c4e-9a55-3f0e2d1c0b9a", "reference_id": "meter-001", "type": "INDIVIDUAL",
		"individual_detail": map[string]any{"given_names": "Siti"}, "business_detail": nil,
		"email": nil, "mobile_number": nil, "phone_number": nil, "description": nil,
		"addresses": []any{}, "identity_accounts": []any{}, "kyc_documents": []any{}, "metadata": nil,
		"service_status": "ACTIVE", "created": "2026-01-31T23:59:59.000Z", "updated": "2026-01-31T23:59:59.000Z",
	}
	with := func(changes map[string]any) []byte {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		for k, v := range changes {
			if v == "(absent)" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	jsonHeader := func(extra ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}, "Request-Id": {"req_5f0c9a1b2c3d4e5f60718293"}}
		for i := 0; i+1 < len(extra); i += 2 {
			if extra[i+1] == "" {
				h.Del(extra[i])
			} else {
				h.Set(extra[i], extra[i+1])
			}
		}
		return h
	}
	get := func(target string) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		r.SetBasicAuth("sk_test_x", "")
		return r
	}
	customer := get("/customers/cust-0194f1c2-7b3a-7c4e-9a55-3f0e2d1c0b9a")

	if err := c.check(customer, nil, 200, jsonHeader(), with(nil)); err != nil {
		t.Fatalf("a valid customer was rejected: %v", err)
	}
	for name, tc := range map[string]struct {
		req    *http.Request
		status int
		header http.Header
		body   []byte
	}{
		"customer without id":             {customer, 200, jsonHeader(), with(map[string]any{"id": "(absent)"})},
		"customer without email":          {customer, 200, jsonHeader(), with(map[string]any{"email": "(absent)"})},
		"addresses null":                  {customer, 200, jsonHeader(), with(map[string]any{"addresses": nil})},
		"unknown service_status":          {customer, 200, jsonHeader(), with(map[string]any{"service_status": "DELETED"})},
		"unknown type":                    {customer, 200, jsonHeader(), with(map[string]any{"type": "PERSON"})},
		"created not a time":              {customer, 200, jsonHeader(), with(map[string]any{"created": "yesterday"})},
		"no request-id":                   {customer, 200, jsonHeader("Request-Id", ""), with(nil)},
		"not JSON":                        {customer, 200, jsonHeader("Content-Type", "text/html"), []byte("<p>hi</p>")},
		"undocumented status":             {customer, 418, jsonHeader(), []byte(`{"error_code":"SERVER_ERROR","message":"teapot"}`)},
		"404 with another error_code":     {customer, 404, jsonHeader(), []byte(`{"error_code":"SERVER_ERROR","message":"x"}`)},
		"error without message":           {customer, 404, jsonHeader(), []byte(`{"error_code":"DATA_NOT_FOUND"}`)},
		"400 without errors":              {get("/customers?limit=0"), 400, jsonHeader(), []byte(`{"error_code":"API_VALIDATION_ERROR","message":"x"}`)},
		"list without has_more":           {get("/customers"), 200, jsonHeader(), []byte(`{"data":[]}`)},
		"429 without Retry-After":         {get("/customers"), 429, jsonHeader(), []byte(`{"error_code":"RATE_LIMIT_EXCEEDED","message":"x"}`)},
		"405 without Allow":               {httptest.NewRequest("DELETE", "/customers", nil), 405, jsonHeader(), []byte(`{"error_code":"METHOD_NOT_ALLOWED","message":"x"}`)},
		"404 as METHOD_NOT_ALLOWED":       {get("/nowhere"), 404, jsonHeader(), []byte(`{"error_code":"METHOD_NOT_ALLOWED","message":"x"}`)},
		"undocumented path answered 200":  {get("/nowhere"), 200, jsonHeader(), []byte(`{}`)},
		"clock not a time":                {get("/sandbox/clock"), 200, jsonHeader(), []byte(`{"now":"soon"}`)},
		"healthz with another status":     {get("/healthz"), 200, jsonHeader(), []byte(`{"status":"fine"}`)},
		"successful request off-document": {get("/customers?limit=500"), 200, jsonHeader(), []byte(`{"data":[],"has_more":false}`)},
	} {
		err := c.check(tc.req, nil, tc.status, tc.header, tc.body)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		t.Logf("%s: %.300s", name, strings.ReplaceAll(err.Error(), "\n", " | "))
	}

	// Through the wrapper, as TestOpenAPIResponses uses it: a handler that
	// answers a customer without an id must make the checker fail.
	h := c.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("request-id", "req_5f0c9a1b2c3d4e5f60718293")
		_, _ = w.Write(with(map[string]any{"id": "(absent)"}))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, get("/customers/cust-0194f1c2-7b3a-7c4e-9a55-3f0e2d1c0b9a"))
	if len(failures) != 1 || !strings.Contains(failures[0], `"id"`) {
		t.Fatalf("the wrapper did not report the missing id: %q", failures)
	}
	if rec.Code != 200 || !slices.Contains(rec.Header().Values("request-id"), "req_5f0c9a1b2c3d4e5f60718293") {
		t.Fatalf("the wrapper changed the response: %d %v", rec.Code, rec.Header())
	}
}
