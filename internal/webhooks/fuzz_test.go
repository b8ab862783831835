package webhooks

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/business"
)

// FuzzDecodeEndpoint feeds arbitrary bodies to the endpoint decoders and
// validation: they never panic, and every rejection is a validation error
// naming a field.
func FuzzDecodeEndpoint(f *testing.F) {
	for _, seed := range []string{
		`{"url":"https://hooks.example.com/x","enabled_events":["*"]}`,
		`{"url":"http://127.0.0.1:9/","enabled_events":["payment.capture","invoice.paid"],"description":"d"}`,
		`{"url":"https://[::1]/","enabled_events":["*","x"],"description":null,"status":"DISABLED"}`,
		`{"url":null,"enabled_events":null}`, `[]`, `{"webhook_endpoint_id":"whe-1"}`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	s := New(Config{Guard: Guard{LookupFunc: func(context.Context, string) ([]netip.Addr, error) {
		return nil, errors.New("no DNS in fuzzing")
	}}})
	live := &business.Business{Mode: business.ModeLive}
	named := func(t *testing.T, what string, err error) {
		if err == nil {
			return
		}
		e, ok := billing.AsError(err)
		if !ok || e.Code != billing.EINVALID || len(e.Fields) == 0 || e.Fields[0].Field == "" {
			t.Fatalf("%s: %v is not a validation error naming a field", what, err)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := context.Background()
		if p, err := DecodeCreate(body); err != nil {
			named(t, "decode create", err)
		} else {
			_, err := s.validateCreate(ctx, live, p)
			named(t, "validate create", err)
		}
		if p, err := DecodePatch(body); err != nil {
			named(t, "decode patch", err)
		} else {
			named(t, "validate patch", s.validatePatch(ctx, live, &p))
		}
		_, err := DecodeRedeliver(body)
		named(t, "decode redeliver", err)
	})
}
