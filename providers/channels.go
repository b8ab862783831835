package providers

import (
	"slices"
	"sort"

	"github.com/tagihan/billing"
)

// countryCurrency is the one table of the countries payment requests may
// name and the currency each charges in (Xendit's processing currencies).
var countryCurrency = map[string]billing.Currency{
	"ID": "IDR",
	"PH": "PHP",
	"VN": "VND",
	"TH": "THB",
	"MY": "MYR",
	"SG": "SGD",
}

// saveChannels lists, per country, the channel codes that can save a
// payment method (Pay and Save) and be charged again without the customer:
// cards everywhere, and the e-wallets and direct debits Xendit links
// (its account-linking and direct-debit channels).
var saveChannels = map[string][]string{
	"ID": {"CARDS", "OVO", "DANA", "LINKAJA", "SHOPEEPAY", "BRI_DIRECT_DEBIT", "MANDIRI_DIRECT_DEBIT"},
	"PH": {"CARDS", "MAYA", "GCASH", "GRABPAY", "SHOPEEPAY", "BPI_DIRECT_DEBIT", "UBP_DIRECT_DEBIT", "RCBC_DIRECT_DEBIT", "CHINABANK_DIRECT_DEBIT"},
	"VN": {"CARDS"},
	"TH": {"CARDS", "KTB_DIRECT_DEBIT", "BBL_DIRECT_DEBIT", "SCB_DIRECT_DEBIT", "BAY_DIRECT_DEBIT"},
	"MY": {"CARDS", "TOUCHNGO", "SHOPEEPAY", "GRABPAY"},
	"SG": {"CARDS"},
}

// Countries returns the supported countries in alphabetical order.
func Countries() []string {
	out := make([]string, 0, len(countryCurrency))
	for c := range countryCurrency {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// CurrencyOf returns the currency payments in country are made in.
func CurrencyOf(country string) (billing.Currency, bool) {
	c, ok := countryCurrency[country]
	return c, ok
}

// Channels returns the channel codes that can save a payment method in
// country, or nil for an unknown country.
func Channels(country string) []string {
	return slices.Clone(saveChannels[country])
}

// ChannelCountries returns the countries where channel is offered, in
// alphabetical order; none for an unknown channel.
func ChannelCountries(channel string) []string {
	var out []string
	for _, country := range Countries() {
		if slices.Contains(saveChannels[country], channel) {
			out = append(out, country)
		}
	}
	return out
}
