package customers_test

import (
	"encoding/json"
	"testing"

	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/customers"
)

var seeds = []string{
	`{"reference_id":"r","type":"INDIVIDUAL","individual_detail":{"given_names":"Siti"}}`,
	`{"reference_id":"r","business_detail":{"business_name":"PT Maju","date_of_registration":"2020-01-31"},"email":"a@b.co"}`,
	`{"reference_id":"r","type":"INDIVIDUAL","individual_detail":{"given_names":"S","employment":{"employer_name":"PLN"}},"addresses":[{"country_code":"ID","line_1":"Jl. 1","is_primary":true}],"metadata":{"k":{"nested":[1,2]}},"identity_accounts":[{"type":"BANK_ACCOUNT"}]}`,
	`{"reference_id":"","type":"X","email":"nope","mobile_number":"0812"}`,
	`{"reference_id":"r","type":"INDIVIDUAL","individual_detail":{"given_names":["x"]}}`,
	`{"email":null,"mobile_number":"+6281234567890","type":"INDIVIDUAL"}`,
	`[1,2]`, `{`, `null`, ``, `{"metadata":{"":1}}`,
}

// FuzzDecodeCreate feeds arbitrary bodies to the POST /customers decoder: it
// must never panic, must fail only with a validation error naming a field,
// and what it accepts must be a valid customer that survives re-encoding.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := customers.DecodeCreate(body)
		if err != nil {
			e, ok := billing.AsError(err)
			if !ok || e.Code != billing.EINVALID || len(e.Fields) == 0 || e.Fields[0].Field == "" {
				t.Fatalf("decode %q: error %#v is not a validation error naming a field", body, err)
			}
			return
		}
		if p.ReferenceID == "" || (p.Type != customers.TypeIndividual && p.Type != customers.TypeBusiness) {
			t.Fatalf("accepted %q with reference_id %q, type %q", body, p.ReferenceID, p.Type)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := customers.DecodeCreate(again); err != nil {
			t.Fatalf("accepted %q but not its re-encoding %s: %v", body, again, err)
		}
	})
}

// FuzzDecodePatch checks that the PATCH decoder and Apply never panic and
// that a patch Apply accepts leaves a customer the create decoder accepts.
func FuzzDecodePatch(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"email":null,"individual_detail":{"given_names":"B"},"type":"INDIVIDUAL"}`))
	f.Add([]byte(`{"addresses":null,"metadata":null,"reference_id":"new"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := customers.DecodePatch(body)
		if err != nil {
			if billing.CodeOf(err) != billing.EINVALID {
				t.Fatalf("decode %q: %v", body, err)
			}
			return
		}
		given := "Siti"
		c := &customers.Customer{ReferenceID: "r", Type: customers.TypeIndividual, IndividualDetail: &customers.IndividualDetail{GivenNames: &given}}
		if err := p.Apply(c); err != nil {
			if billing.CodeOf(err) != billing.EINVALID {
				t.Fatalf("apply %q: %v", body, err)
			}
			return
		}
		if c.Type != customers.TypeIndividual || c.ReferenceID == "" || c.IndividualDetail == nil {
			t.Fatalf("patch %q produced an invalid customer %+v", body, c)
		}
	})
}
