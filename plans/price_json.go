package plans

import (
	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
)

// PriceJSON is a price as the API reads and writes it:
// {"model": "GRADUATED", "tiers": [{"up_to": 100, "unit_amount": 1000,
// "flat_amount": 0}, {"up_to": null, …}]}, {"model": "PER_UNIT",
// "unit_amount": 1444.70}, {"model": "PACKAGE", "package_size": 10,
// "package_amount": 25000, "rounding": "UP"}.
type PriceJSON struct {
	Model         PriceModel      `json:"model"`
	UnitAmount    *billing.Number `json:"unit_amount,omitempty"`
	Tiers         []TierJSON      `json:"tiers,omitempty"`
	PackageSize   *billing.Number `json:"package_size,omitempty"`
	PackageAmount *billing.Number `json:"package_amount,omitempty"`
	Rounding      PackageRounding `json:"rounding,omitempty"`
}

// TierJSON is a tier as the API reads and writes it; up_to null (or left
// out) is the open last tier.
type TierJSON struct {
	UpTo       *billing.Number `json:"up_to"`
	UnitAmount *billing.Number `json:"unit_amount,omitempty"`
	FlatAmount *billing.Number `json:"flat_amount,omitempty"`
}

func dec(n *billing.Number) decimal.Decimal {
	if n == nil {
		return decimal.Zero
	}
	return n.Decimal
}

// Price returns the price p describes; validate it with Price.Validate.
func (p PriceJSON) Price() Price {
	out := Price{Model: p.Model, UnitAmount: dec(p.UnitAmount), PackageSize: dec(p.PackageSize),
		PackageAmount: dec(p.PackageAmount), Rounding: p.Rounding}
	for _, t := range p.Tiers {
		tier := Tier{UnitAmount: dec(t.UnitAmount), FlatAmount: dec(t.FlatAmount)}
		if t.UpTo != nil {
			u := t.UpTo.Decimal
			tier.UpTo = &u
		}
		out.Tiers = append(out.Tiers, tier)
	}
	return out
}

// JSON returns p in the API's shape.
func (p Price) JSON() PriceJSON {
	num := func(d decimal.Decimal) *billing.Number { n := billing.NumberOf(d); return &n }
	out := PriceJSON{Model: p.Model}
	switch p.Model {
	case PerUnit:
		out.UnitAmount = num(p.UnitAmount)
	case Graduated, Volume:
		for _, t := range p.Tiers {
			tj := TierJSON{UnitAmount: num(t.UnitAmount), FlatAmount: num(t.FlatAmount)}
			if t.UpTo != nil {
				tj.UpTo = num(*t.UpTo)
			}
			out.Tiers = append(out.Tiers, tj)
		}
	case Package:
		out.PackageSize, out.PackageAmount, out.Rounding = num(p.PackageSize), num(p.PackageAmount), p.Rounding
	}
	return out
}
