package plans_test

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/plans"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }
func dp(s string) *decimal.Decimal {
	v := d(s)
	return &v
}

// pln is a graduated electricity tariff in IDR: the first 100 kWh at 1,000,
// the next 100 at 1,500, the rest at 2,000, with a 5,000 flat charge on
// entering the top tier.
var pln = plans.Price{Model: plans.Graduated, Tiers: []plans.Tier{
	{UpTo: dp("100"), UnitAmount: d("1000")},
	{UpTo: dp("200"), UnitAmount: d("1500")},
	{UnitAmount: d("2000"), FlatAmount: d("5000")},
}}

func TestRateWorkedExamples(t *testing.T) {
	tests := []struct {
		name   string
		price  plans.Price
		cur    billing.Currency
		qty    string
		amount string
		tiers  []string // tier amounts
	}{
		{"per unit IDR", plans.Price{Model: plans.PerUnit, UnitAmount: d("1444.70")}, "IDR", "123.4", "178276", nil},                                 // 178275.98 → 178276
		{"per unit PHP, half a centavo rounds away from zero", plans.Price{Model: plans.PerUnit, UnitAmount: d("0.125")}, "PHP", "0.1", "0.01", nil}, // 0.0125
		{"per unit PHP exact", plans.Price{Model: plans.PerUnit, UnitAmount: d("11.2345")}, "PHP", "250.5", "2814.24", nil},                          // 2814.24225
		{"graduated inside tier 1", pln, "IDR", "60", "60000", []string{"60000"}},
		{"graduated at a tier boundary", pln, "IDR", "100", "100000", []string{"100000"}},
		{"graduated across two tiers", pln, "IDR", "150", "175000", []string{"100000", "75000"}},
		{"graduated into the open tier", pln, "IDR", "250.5", "356000", []string{"100000", "150000", "106000"}}, // 50.5×2000+5000
		{"graduated zero", pln, "IDR", "0", "0", nil},
		{"graduated just past a boundary", pln, "IDR", "100.000000000001", "100000", []string{"100000", "0"}},
		{"graduated just into the flat tier", pln, "IDR", "200.000000000001", "255000", []string{"100000", "150000", "5000"}},
		{"volume, tier 2 prices all units", plans.Price{Model: plans.Volume, Tiers: pln.Tiers}, "IDR", "150", "225000", []string{"225000"}},
		{"volume, top tier with its flat", plans.Price{Model: plans.Volume, Tiers: pln.Tiers}, "IDR", "201", "407000", []string{"407000"}},
		{"volume zero", plans.Price{Model: plans.Volume, Tiers: pln.Tiers}, "IDR", "0", "0", nil},
		{"package up", plans.Price{Model: plans.Package, PackageSize: d("10"), PackageAmount: d("25000"), Rounding: plans.RoundUp}, "IDR", "21", "75000", nil},
		{"package down", plans.Price{Model: plans.Package, PackageSize: d("10"), PackageAmount: d("25000"), Rounding: plans.RoundDown}, "IDR", "29.99", "50000", nil},
		{"package exact", plans.Price{Model: plans.Package, PackageSize: d("0.5"), PackageAmount: d("1.25"), Rounding: plans.RoundUp}, "PHP", "2", "5", nil},
		{"package zero", plans.Price{Model: plans.Package, PackageSize: d("10"), PackageAmount: d("25000"), Rounding: plans.RoundUp}, "IDR", "0", "0", nil},
		{"graduated PHP with tiers apportioned", plans.Price{Model: plans.Graduated, Tiers: []plans.Tier{
			{UpTo: dp("1"), UnitAmount: d("0.333")}, {UpTo: dp("2"), UnitAmount: d("0.333")}, {UnitAmount: d("0.334")}}}, "PHP", "3", "1", []string{"0.33", "0.33", "0.34"}},
	}
	for _, tc := range tests {
		r, err := plans.Rate(tc.price, d(tc.qty), tc.cur)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !r.Amount.Equal(d(tc.amount)) {
			t.Errorf("%s: amount %s (exact %s), want %s", tc.name, r.Amount, r.Exact, tc.amount)
		}
		if tc.tiers != nil {
			var got []string
			for _, tier := range r.Tiers {
				got = append(got, tier.Amount.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.tiers, ",") {
				t.Errorf("%s: tiers %v, want %v", tc.name, got, tc.tiers)
			}
		}
	}
	r, _ := plans.Rate(pln, d("250.5"), "IDR")
	if len(r.Tiers) != 3 || !r.Tiers[2].Quantity.Equal(d("50.5")) || !r.Tiers[1].From.Equal(d("100")) || r.Tiers[2].To != nil {
		t.Fatalf("tier breakdown %+v", r.Tiers)
	}
	if _, err := plans.Rate(pln, d("-1"), "IDR"); err == nil {
		t.Fatal("a negative quantity was rated")
	}
	if !plans.MinimumTopUp(d("30000"), d("50000")).Equal(d("20000")) || !plans.MinimumTopUp(d("60000"), d("50000")).IsZero() {
		t.Fatal("MinimumTopUp")
	}
}

// randomTiers makes an ascending tier list with prices in cur.
func randomTiers(rng *rand.Rand, cur billing.Currency) []plans.Tier {
	n := 1 + rng.Intn(4)
	tiers := make([]plans.Tier, n)
	up := decimal.Zero
	for i := range tiers {
		tiers[i].UnitAmount = decimal.New(rng.Int63n(5_000_000), -int32(rng.Intn(7)))
		if rng.Intn(3) == 0 {
			tiers[i].FlatAmount = decimal.New(rng.Int63n(100_000), -cur.Exponent())
		}
		if i < n-1 {
			up = up.Add(decimal.New(1+rng.Int63n(50_000), -int32(rng.Intn(3))))
			u := up
			tiers[i].UpTo = &u
		}
	}
	return tiers
}

func TestRateProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	for i := 0; i < 20000; i++ {
		cur := billing.Currencies()[rng.Intn(len(billing.Currencies()))]
		tiers := randomTiers(rng, cur)
		grad := plans.Price{Model: plans.Graduated, Tiers: tiers}
		vol := plans.Price{Model: plans.Volume, Tiers: tiers}
		if err := grad.Validate("price", cur); err != nil {
			t.Fatalf("generated an invalid price: %v", err)
		}
		q := decimal.New(rng.Int63n(200_000_000), -int32(rng.Intn(6)))
		g, err := plans.Rate(grad, q, cur)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := plans.Rate(vol, q, cur)
		label := fmt.Sprintf("%s q=%s tiers=%+v", cur, q, tiers)
		// The line is rounded once, to the currency; its tiers add up to it.
		sum, qty := decimal.Zero, decimal.Zero
		for _, tc := range g.Tiers {
			sum = sum.Add(tc.Amount)
			qty = qty.Add(tc.Quantity)
			if tc.Amount.IsNegative() || billing.DecimalPlaces(tc.Amount) > cur.Exponent() {
				t.Fatalf("%s: tier amount %s", label, tc.Amount)
			}
		}
		if !sum.Equal(g.Amount) || !g.Amount.Equal(cur.Round(g.Exact)) || !qty.Equal(q) {
			t.Fatalf("%s: tiers add to %s for %s units, line %s (exact %s)", label, sum, qty, g.Amount, g.Exact)
		}
		for _, r := range []plans.Rating{g, v} {
			if r.Amount.IsNegative() || billing.DecimalPlaces(r.Amount) > cur.Exponent() {
				t.Fatalf("%s: amount %s", label, r.Amount)
			}
		}
		// Within the first tier, graduated and volume agree.
		if tiers[0].UpTo == nil || !q.GreaterThan(*tiers[0].UpTo) {
			if !g.Exact.Equal(v.Exact) {
				t.Fatalf("%s: first tier: graduated %s, volume %s", label, g.Exact, v.Exact)
			}
		}
		// More usage never costs less under graduated prices.
		more, _ := plans.Rate(grad, q.Add(decimal.New(1, -2)), cur)
		if more.Exact.LessThan(g.Exact) {
			t.Fatalf("%s: more usage cost less", label)
		}
	}
}

func TestPriceValidation(t *testing.T) {
	cases := []struct {
		p     plans.Price
		cur   billing.Currency
		field string
	}{
		{plans.Price{Model: "TIERED"}, "IDR", "price.model"},
		{plans.Price{Model: plans.PerUnit, UnitAmount: d("-1")}, "IDR", "price.unit_amount"},
		{plans.Price{Model: plans.PerUnit, UnitAmount: d("0.0000000000001")}, "IDR", "price.unit_amount"},
		{plans.Price{Model: plans.Graduated}, "IDR", "price.tiers"},
		{plans.Price{Model: plans.Graduated, Tiers: []plans.Tier{{UnitAmount: d("1")}, {UnitAmount: d("2")}}}, "IDR", "price.tiers[0].up_to"},
		{plans.Price{Model: plans.Graduated, Tiers: []plans.Tier{{UpTo: dp("10"), UnitAmount: d("1")}}}, "IDR", "price.tiers[0].up_to"},
		{plans.Price{Model: plans.Volume, Tiers: []plans.Tier{{UpTo: dp("10")}, {UpTo: dp("10")}, {}}}, "IDR", "price.tiers[1].up_to"},
		{plans.Price{Model: plans.Volume, Tiers: []plans.Tier{{UpTo: dp("0")}, {}}}, "IDR", "price.tiers[0].up_to"},
		{plans.Price{Model: plans.Graduated, Tiers: []plans.Tier{{UpTo: dp("10"), FlatAmount: d("0.5")}, {}}}, "IDR", "price.tiers[0].flat_amount"},
		{plans.Price{Model: plans.Graduated, Tiers: []plans.Tier{{UpTo: dp("10"), FlatAmount: d("0.005")}, {}}}, "PHP", "price.tiers[0].flat_amount"},
		{plans.Price{Model: plans.Package, PackageAmount: d("1"), Rounding: plans.RoundUp}, "IDR", "price.package_size"},
		{plans.Price{Model: plans.Package, PackageSize: d("1"), PackageAmount: d("1")}, "IDR", "price.rounding"},
		{plans.Price{Model: plans.Package, PackageSize: d("1"), PackageAmount: d("1.5"), Rounding: plans.RoundUp}, "VND", "price.package_amount"},
	}
	for _, c := range cases {
		err := c.p.Validate("price", c.cur)
		e, ok := billing.AsError(err)
		if !ok {
			t.Errorf("%+v: accepted", c.p)
			continue
		}
		found := false
		for _, f := range e.Fields {
			found = found || f.Field == c.field
		}
		if !found {
			t.Errorf("%+v: %v, want %s named", c.p, err, c.field)
		}
	}
	if err := pln.Validate("price", "IDR"); err != nil {
		t.Fatal(err)
	}
}
