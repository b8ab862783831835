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

// CallbackRequestLocksForTest is how many times this process has run the
// statements that lock the payment requests a batch of callbacks names.
func CallbackRequestLocksForTest() int64 {
	return callbackRequestsByIDSQL.Runs() + callbackRequestsByRefSQL.Runs() + callbackRequestsSQL.Runs()
}
