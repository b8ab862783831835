package providers

// Config is one business's provider configuration (SPEC §6.6), as the
// engine stores it: which provider new payment requests use, and the
// credentials of each provider the business has set up. Credentials of a
// provider the business no longer uses are kept, so that payment requests
// still open there can be reconciled and their callbacks verified.
type Config struct {
	BusinessID string
	// Active is the provider new payment requests go to. Empty when a live
	// business has not configured one.
	Active Name
	// Sandbox says whether the business is a sandbox business.
	Sandbox  bool
	Xendit   *XenditCredentials
	WooshPay *WooshPayCredentials
}

// XenditCredentials are a business's Xendit account settings.
type XenditCredentials struct {
	// SecretKey is the secret API key (xnd_development_… or
	// xnd_production_…), sent as the HTTP Basic user name.
	SecretKey string
	// CallbackToken is the webhook verification token of the Xendit
	// dashboard, which Xendit sends in x-callback-token.
	CallbackToken string
}

// WooshPayCredentials are a business's WooshPay account settings.
type WooshPayCredentials struct {
	// SecretKey is the secret API key (sk_test_… or sk_live_…).
	SecretKey string
	// WebhookSecret signs the callbacks (whsec_…).
	WebhookSecret string
	// WebhookEndpointID is the endpoint the engine registered ("we_…"), or
	// empty when the secret was configured by hand.
	WebhookEndpointID string
}
