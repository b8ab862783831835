package engine

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
	"github.com/tagihan/billing"
	"github.com/tagihan/billing/internal/customers"
	"github.com/tagihan/billing/plans"
)

// Item types (Xendit's).
var itemTypes = []string{"DIGITAL_PRODUCT", "PHYSICAL_PRODUCT", "DIGITAL_SERVICE", "PHYSICAL_SERVICE", "FEE", "DISCOUNT"}

// checkItems checks items; an empty list is no items.
func checkItems(v *billing.Validation, in []ItemInput, cur billing.Currency) []Item {
	if len(in) == 0 {
		return nil
	}
	if !v.Check(len(in) <= maxItems, "items", fmt.Sprintf("must have at most %d items", maxItems)) {
		return nil
	}
	out := make([]Item, 0, len(in))
	for i, it := range in {
		f := fmt.Sprintf("items[%d]", i)
		v.Check(contains(itemTypes, it.Type), f+".type", "must be one of "+strings.Join(itemTypes, ", "))
		checkText(v, f+".name", &it.Name, true, maxReference)
		item := Item{Type: it.Type, Name: it.Name, URL: it.URL, Category: it.Category, Subcategory: it.Subcategory,
			Description: it.Description, Metadata: it.Metadata}
		if it.NetUnitAmount == nil {
			v.Add(f+".net_unit_amount", "is required")
		} else {
			d := it.NetUnitAmount.Decimal
			if it.Type == "DISCOUNT" {
				v.Check(!d.IsPositive(), f+".net_unit_amount", "must not be positive for a DISCOUNT")
				checkMoney(v, f+".net_unit_amount", d.Abs(), cur)
			} else {
				checkMoney(v, f+".net_unit_amount", d, cur)
			}
			item.NetUnitAmount = *it.NetUnitAmount
		}
		if it.Quantity == nil {
			v.Add(f+".quantity", "is required")
		} else {
			item.Quantity = *it.Quantity
			v.Check(item.Quantity >= 1 && item.Quantity <= maxItemQuantity, f+".quantity", "must be an integer from 1 to 1000000")
		}
		checkURL(v, f+".url", it.URL)
		checkText(v, f+".category", it.Category, false, maxReference)
		checkText(v, f+".subcategory", it.Subcategory, false, maxReference)
		checkText(v, f+".description", it.Description, false, maxDescription)
		customers.ValidateMetadata(v, f+".metadata", it.Metadata)
		out = append(out, item)
	}
	return out
}

// checkItemsTotal checks that items, when there are any, add up to the
// plan's amount: Σ net_unit_amount × quantity.
func checkItemsTotal(v *billing.Validation, items []Item, amount decimal.Decimal, cur billing.Currency, amountGiven bool) {
	if len(items) == 0 || !amountGiven || !cur.Valid() {
		return
	}
	sum := decimal.Zero
	for _, it := range items {
		sum = sum.Add(it.NetUnitAmount.Decimal.Mul(decimal.NewFromInt(int64(it.Quantity))))
	}
	v.Check(sum.Equal(amount), "amount", fmt.Sprintf("must equal the items' total (Σ net_unit_amount × quantity = %s)", sum))
}

// checkUsageCharges checks each charge's shape and price; that its meter
// exists is checked against the database.
func checkUsageCharges(v *billing.Validation, in []UsageChargeInput, cur billing.Currency) []UsageCharge {
	if !v.Check(len(in) <= maxUsageCharges, "usage_charges", fmt.Sprintf("must have at most %d charges", maxUsageCharges)) {
		return nil
	}
	out := make([]UsageCharge, 0, len(in))
	seen := map[string]bool{}
	for i, c := range in {
		f := fmt.Sprintf("usage_charges[%d]", i)
		switch {
		case c.Meter == "":
			v.Add(f+".meter", "is required: the code of a meter")
		case seen[c.Meter]:
			v.Add(f+".meter", "is charged twice; give each meter one charge")
		}
		seen[c.Meter] = true
		checkText(v, f+".description", c.Description, false, maxReference)
		uc := UsageCharge{Meter: c.Meter, Description: c.Description, MinimumAmount: c.MinimumAmount}
		if c.MinimumAmount != nil {
			checkMoney(v, f+".minimum_amount", c.MinimumAmount.Decimal, cur)
		}
		if c.Price == nil {
			v.Add(f+".price", "is required")
		} else if checkPricePresence(v, f+".price", c.Price) {
			price := c.Price.Price()
			if cur.Valid() {
				v.Merge(f+".price", price.Validate(f+".price", cur))
			}
			uc.Price = price.JSON()
		}
		out = append(out, uc)
	}
	return out
}

// checkPricePresence checks that a price sends the numbers its model
// needs (a missing one would silently be zero) and reports whether the
// price can be validated further.
func checkPricePresence(v *billing.Validation, prefix string, p *plans.PriceJSON) bool {
	ok := true
	need := func(field string, n *billing.Number) {
		if n == nil {
			v.Add(prefix+"."+field, "is required for a "+string(p.Model)+" price")
			ok = false
		}
	}
	switch p.Model {
	case plans.PerUnit:
		need("unit_amount", p.UnitAmount)
	case plans.Graduated, plans.Volume:
		for i, t := range p.Tiers {
			need(fmt.Sprintf("tiers[%d].unit_amount", i), t.UnitAmount)
		}
	case plans.Package:
		need("package_size", p.PackageSize)
		need("package_amount", p.PackageAmount)
	}
	return ok
}

// reviewPolicyInput is review_policy as an object.
type reviewPolicyInput struct {
	Mode        *string         `json:"mode"`
	MaxTotal    *billing.Number `json:"max_total"`
	UsageFactor *billing.Number `json:"usage_factor"`
}

// checkReviewPolicy reads review_policy: "AUTO", "MANUAL", or an object
// {mode, max_total, usage_factor}; missing parts take their defaults.
func checkReviewPolicy(v *billing.Validation, raw json.RawMessage, cur billing.Currency) ReviewPolicy {
	out := defaultReviewPolicy()
	var mode string
	if json.Unmarshal(raw, &mode) == nil {
		out.Mode = mode
	} else {
		var in reviewPolicyInput
		if err := json.Unmarshal(raw, &in); err != nil {
			v.Add("review_policy", `must be "AUTO", "MANUAL", or an object {"mode", "max_total", "usage_factor"} of numbers`)
			return out
		}
		if in.Mode != nil {
			out.Mode = *in.Mode
		}
		if in.MaxTotal != nil {
			checkMoney(v, "review_policy.max_total", in.MaxTotal.Decimal, cur)
			out.MaxTotal = in.MaxTotal
		}
		if in.UsageFactor != nil {
			f := in.UsageFactor.Decimal
			v.Check(f.GreaterThanOrEqual(decimal.NewFromInt(1)) && f.LessThanOrEqual(decimal.NewFromInt(maxUsageFactor)) &&
				billing.DecimalPlaces(f) <= plans.MaxUnitPlaces, "review_policy.usage_factor", "must be a number from 1 to 1000")
			out.UsageFactor = *in.UsageFactor
		}
	}
	v.Check(out.Mode == reviewAuto || out.Mode == reviewManual, "review_policy.mode", "must be AUTO or MANUAL")
	return out
}
