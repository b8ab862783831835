package payments

import (
	"context"
	"net/http"

	"github.com/tagihan/billing/providers"
)

// ReceiveSandboxCallbackForTest hands a sandbox callback to the callback
// processing, as DeliverSandboxCallbacks does, without a sandbox row.
func (s *Service) ReceiveSandboxCallbackForTest(ctx context.Context, businessID string, h http.Header, body []byte) (CallbackOutcome, error) {
	return s.receive(ctx, providers.Sandbox, businessID, providers.CallbackInput{Header: h, Body: body})
}
