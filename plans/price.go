package plans

import (
	"fmt"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
)

// PriceModel says how a quantity of usage is priced.
type PriceModel string

// Price models (SPEC §4.4).
const (
	// PerUnit prices every unit at UnitAmount.
	PerUnit PriceModel = "PER_UNIT"
	// Graduated prices the units inside each tier at that tier's price,
	// and adds the flat amount of every tier the quantity enters.
	Graduated PriceModel = "GRADUATED"
	// Volume prices all units at the price of the tier the quantity reaches,
	// plus that tier's flat amount.
	Volume PriceModel = "VOLUME"
	// Package sells whole packages of PackageSize units at PackageAmount,
	// rounding the number of packages UP or DOWN.
	Package PriceModel = "PACKAGE"
)

// PackageRounding says how a part package is counted.
type PackageRounding string

// Package roundings.
const (
	RoundUp   PackageRounding = "UP"
	RoundDown PackageRounding = "DOWN"
)

// MaxUnitPlaces is the most decimal places a unit price may have.
const MaxUnitPlaces = 12

// Tier is one band of a GRADUATED or VOLUME price: the units above the
// previous tier's UpTo up to and including this UpTo (nil: no upper bound,
// only for the last tier).
type Tier struct {
	UpTo       *decimal.Decimal
	UnitAmount decimal.Decimal
	FlatAmount decimal.Decimal
}

// Price is a usage charge's price.
type Price struct {
	Model         PriceModel
	UnitAmount    decimal.Decimal // PER_UNIT
	Tiers         []Tier          // GRADUATED, VOLUME
	PackageSize   decimal.Decimal // PACKAGE
	PackageAmount decimal.Decimal // PACKAGE
	Rounding      PackageRounding // PACKAGE
}

// Validate checks p for currency cur and names each bad field under
// prefix ("usage_charges[0].price"): unit amounts are not negative and have
// at most 12 decimal places; flat and package amounts are money in cur;
// tiers ascend strictly and only the last is open-ended; a package has a
// positive size and a rounding.
func (p Price) Validate(prefix string, cur billing.Currency) error {
	var v billing.Validation
	unit := func(field string, d decimal.Decimal) {
		v.Check(!d.IsNegative(), field, "must not be negative")
		v.Check(billing.DecimalPlaces(d) <= MaxUnitPlaces, field, fmt.Sprintf("must have at most %d decimal places", MaxUnitPlaces))
	}
	money := func(field string, d decimal.Decimal) {
		v.Check(!d.IsNegative(), field, "must not be negative")
		if cur.Valid() {
			v.Check(billing.DecimalPlaces(d) <= cur.Exponent(), field, fmt.Sprintf("%s amounts allow at most %d decimal places", cur, cur.Exponent()))
		}
	}
	switch p.Model {
	case PerUnit:
		unit(prefix+".unit_amount", p.UnitAmount)
	case Graduated, Volume:
		if !v.Check(len(p.Tiers) > 0, prefix+".tiers", "must have at least one tier") {
			break
		}
		var prev decimal.Decimal
		for i, t := range p.Tiers {
			f := fmt.Sprintf("%s.tiers[%d]", prefix, i)
			last := i == len(p.Tiers)-1
			switch {
			case t.UpTo == nil && !last:
				v.Add(f+".up_to", "may be null only on the last tier")
			case t.UpTo != nil && last:
				v.Add(f+".up_to", "must be null on the last tier, so that every quantity has a price")
			case t.UpTo != nil && !t.UpTo.GreaterThan(prev):
				v.Add(f+".up_to", fmt.Sprintf("must be greater than the previous tier's (%s)", prev))
			case t.UpTo != nil && billing.DecimalPlaces(*t.UpTo) > MaxUnitPlaces:
				v.Add(f+".up_to", fmt.Sprintf("must have at most %d decimal places", MaxUnitPlaces))
			}
			if t.UpTo != nil {
				prev = *t.UpTo
			}
			unit(f+".unit_amount", t.UnitAmount)
			money(f+".flat_amount", t.FlatAmount)
		}
	case Package:
		v.Check(p.PackageSize.IsPositive(), prefix+".package_size", "must be greater than zero")
		v.Check(billing.DecimalPlaces(p.PackageSize) <= MaxUnitPlaces, prefix+".package_size", fmt.Sprintf("must have at most %d decimal places", MaxUnitPlaces))
		money(prefix+".package_amount", p.PackageAmount)
		v.Check(p.Rounding == RoundUp || p.Rounding == RoundDown, prefix+".rounding", "must be UP or DOWN")
	default:
		v.Add(prefix+".model", "must be PER_UNIT, GRADUATED, VOLUME or PACKAGE")
	}
	return v.Err()
}

// TierCharge is what one tier contributes to a rated line.
type TierCharge struct {
	// From and To bound the tier's units: (From, To], To nil when open.
	From       decimal.Decimal
	To         *decimal.Decimal
	Quantity   decimal.Decimal // units priced in this tier
	UnitAmount decimal.Decimal
	FlatAmount decimal.Decimal // charged when the quantity enters the tier
	// Amount is the tier's share of the line, in the currency's precision.
	// The tiers' amounts add up to the line's amount exactly.
	Amount decimal.Decimal
}

// Rating is a priced quantity: one invoice line.
type Rating struct {
	Quantity decimal.Decimal
	// Exact is the amount before rounding.
	Exact decimal.Decimal
	// Amount is Exact rounded half away from zero to the currency's
	// precision: the line's amount.
	Amount decimal.Decimal
	// UnitAmount is the price per unit when one price applies to every unit
	// (PER_UNIT, VOLUME); zero otherwise.
	UnitAmount decimal.Decimal
	// Packages is the number of packages sold (PACKAGE).
	Packages decimal.Decimal
	// Tiers is the breakdown of GRADUATED and VOLUME prices.
	Tiers []TierCharge
}

// Rate prices quantity (not negative) with p in currency cur. The line
// amount is rounded once, at the line; a tier breakdown is apportioned from
// it (largest remainder), so that its amounts add up to the line exactly.
// A zero quantity enters no tier and costs nothing.
func Rate(p Price, quantity decimal.Decimal, cur billing.Currency) (Rating, error) {
	if quantity.IsNegative() {
		return Rating{}, fmt.Errorf("rate: negative quantity %s", quantity)
	}
	r := Rating{Quantity: quantity}
	switch p.Model {
	case PerUnit:
		r.UnitAmount = p.UnitAmount
		r.Exact = quantity.Mul(p.UnitAmount)
	case Graduated:
		prev := decimal.Zero
		for _, t := range p.Tiers {
			if !quantity.GreaterThan(prev) {
				break
			}
			in := quantity.Sub(prev)
			if t.UpTo != nil && quantity.GreaterThan(*t.UpTo) {
				in = t.UpTo.Sub(prev)
			}
			exact := in.Mul(t.UnitAmount).Add(t.FlatAmount)
			r.Tiers = append(r.Tiers, TierCharge{From: prev, To: t.UpTo, Quantity: in, UnitAmount: t.UnitAmount, FlatAmount: t.FlatAmount, Amount: exact})
			r.Exact = r.Exact.Add(exact)
			if t.UpTo == nil {
				break
			}
			prev = *t.UpTo
		}
	case Volume:
		if quantity.IsPositive() {
			prev := decimal.Zero
			for _, t := range p.Tiers {
				if t.UpTo == nil || !quantity.GreaterThan(*t.UpTo) {
					exact := quantity.Mul(t.UnitAmount).Add(t.FlatAmount)
					r.UnitAmount = t.UnitAmount
					r.Tiers = []TierCharge{{From: prev, To: t.UpTo, Quantity: quantity, UnitAmount: t.UnitAmount, FlatAmount: t.FlatAmount, Amount: exact}}
					r.Exact = exact
					break
				}
				prev = *t.UpTo
			}
		}
	case Package:
		packages := quantity.Div(p.PackageSize)
		if p.Rounding == RoundUp {
			packages = packages.Ceil()
		} else {
			packages = packages.Floor()
		}
		r.Packages = packages
		r.Exact = packages.Mul(p.PackageAmount)
	default:
		return Rating{}, fmt.Errorf("rate: price model %q", p.Model)
	}
	r.Amount = cur.Round(r.Exact)
	apportion(r.Tiers, r.Amount, cur)
	return r, nil
}

// apportion rounds the tiers' exact amounts to the currency so that they
// add up to total: each is rounded down (toward zero), and the units left
// go one by one to the tiers with the largest remainders (earlier tiers
// first on ties).
func apportion(tiers []TierCharge, total decimal.Decimal, cur billing.Currency) {
	if len(tiers) == 0 {
		return
	}
	exp := cur.Exponent()
	unit := decimal.New(1, -exp)
	sum := decimal.Zero
	rem := make([]decimal.Decimal, len(tiers))
	for i := range tiers {
		down := tiers[i].Amount.RoundDown(exp)
		rem[i] = tiers[i].Amount.Sub(down)
		tiers[i].Amount = down
		sum = sum.Add(down)
	}
	for left := total.Sub(sum); left.IsPositive(); left = left.Sub(unit) {
		best := 0
		for i := range rem {
			if rem[i].GreaterThan(rem[best]) {
				best = i
			}
		}
		tiers[best].Amount = tiers[best].Amount.Add(unit)
		rem[best] = decimal.Zero.Sub(unit) // taken
	}
}

// MinimumTopUp returns what a usage charge with a minimum amount adds to
// reach it: the minimum less the rated amount, or zero when the rating
// reaches it (SPEC §5.2, the MINIMUM line).
func MinimumTopUp(rated, minimum decimal.Decimal) decimal.Decimal {
	if rated.GreaterThanOrEqual(minimum) {
		return decimal.Zero
	}
	return minimum.Sub(rated)
}
