package api_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tagihan/billing/internal/business"
	xendit "github.com/xendit/xendit-go/v7"
	"github.com/xendit/xendit-go/v7/common"
	"github.com/xendit/xendit-go/v7/customer"
)

// The tests in this file drive the real API with Xendit's official Go SDK
// (github.com/xendit/xendit-go/v7), its base URL pointed at the engine, as a
// utility that already uses the SDK would (SPEC §4.1): whatever the SDK
// sends must be accepted, and whatever the engine answers must decode into
// the SDK's models and error type.

// unknownCustomerID is a well-formed customer id that no business has.
const unknownCustomerID = "cust-00000000-0000-4000-8000-000000000000"

// xenditClient returns an SDK client that sends key to the test server.
func xenditClient(t *testing.T, b *bundle, key string) *xendit.APIClient {
	t.Helper()
	c := xendit.NewClient(key)
	cfg, ok := c.GetConfig().(*xendit.Configuration)
	if !ok {
		t.Fatalf("GetConfig() is %T, not *xendit.Configuration", c.GetConfig())
	}
	cfg.Servers = xendit.ServerConfigurations{{URL: b.srv.URL, Description: "billing engine under test"}}
	cfg.HTTPClient = b.srv.Client()
	return c
}

// sitiRequest is a complete INDIVIDUAL customer as the SDK builds it.
func sitiRequest(ref, email string) customer.CustomerRequest {
	req := *customer.NewCustomerRequest(ref)
	req.SetType("INDIVIDUAL")
	d := customer.NewIndividualDetail()
	d.SetGivenNames("Siti")
	d.SetSurname("Rahayu")
	req.SetIndividualDetail(*d)
	req.SetEmail(email)
	req.SetMobileNumber("+6281234567890")
	req.SetDescription("PLN prepaid meter 1234")
	a := customer.NewAddressRequest()
	a.SetCountryCode("ID")
	a.SetLine1("Jl. Sudirman No. 1")
	a.SetCity("Jakarta Selatan")
	a.SetProvinceState("DKI Jakarta")
	a.SetPostalCode("12190")
	a.SetCategory("HOME")
	a.SetIsPrimary(true)
	req.SetAddresses([]customer.AddressRequest{*a})
	req.SetMetadata(map[string]interface{}{"meter_no": "PLN-1234", "tariff": "R1"})
	return req
}

// noSDKError fails the test when the SDK reported an error. Execute returns
// a *common.XenditSdkError, so it is compared as a typed pointer (a nil
// pointer in an error interface is not nil).
func noSDKError(t *testing.T, what string, xerr *common.XenditSdkError) {
	t.Helper()
	if xerr != nil {
		t.Fatalf("%s: SDK error status=%s code=%s message=%q raw=%v", what, xerr.Status(), xerr.ErrorCode(), xerr.Error(), xerr.RawResponse())
	}
}

// wantSDKError checks an error as the SDK reports it: the HTTP status, the
// error_code, a message (naming field, when field is set) and, when field
// is set, the errors[] entry for it.
func wantSDKError(t *testing.T, what string, resp *http.Response, xerr *common.XenditSdkError, status int, code, field string) {
	t.Helper()
	if xerr == nil {
		got := 0
		if resp != nil {
			got = resp.StatusCode
		}
		t.Fatalf("%s: no SDK error (HTTP %d), want %d %s", what, got, status, code)
	}
	if resp == nil || resp.StatusCode != status || xerr.Status() != strconv.Itoa(status) || xerr.ErrorCode() != code {
		t.Fatalf("%s: got status=%s code=%s message=%q raw=%v, want %d %s", what, xerr.Status(), xerr.ErrorCode(), xerr.Error(), xerr.RawResponse(), status, code)
	}
	msg := xerr.Error()
	if msg == "" || msg == resp.Status {
		t.Fatalf("%s: the SDK error has no message from the body: %q (raw %v)", what, msg, xerr.RawResponse())
	}
	if field == "" {
		return
	}
	if !strings.Contains(msg, field) {
		t.Errorf("%s: message %q does not name %s", what, msg, field)
	}
	errs, _ := xerr.RawResponse()["errors"].([]interface{})
	for _, e := range errs {
		if m, ok := e.(map[string]interface{}); ok && m["field"] == field {
			return
		}
	}
	t.Errorf("%s: errors[] does not name %s: %v", what, field, xerr.RawResponse())
}

// byReference returns the customers the SDK finds for ref.
func byReference(t *testing.T, c *xendit.APIClient, ref string) []customer.Customer {
	t.Helper()
	list, _, xerr := c.CustomerApi.GetCustomerByReferenceID(context.Background()).ReferenceId(ref).Execute()
	noSDKError(t, "GetCustomerByReferenceID "+ref, xerr)
	if list.GetHasMore() {
		t.Errorf("GetCustomerByReferenceID %s: has_more is true", ref)
	}
	return list.GetData()
}

// checkSiti checks the fields of a customer created from sitiRequest.
func checkSiti(t *testing.T, what string, got *customer.Customer, ref, email string) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: no customer", what)
	}
	if !strings.HasPrefix(got.GetId(), "cust-") {
		t.Errorf("%s: id %q, want a cust- id", what, got.GetId())
	}
	if got.GetReferenceId() != ref || got.GetType() != "INDIVIDUAL" {
		t.Errorf("%s: reference_id %q type %q, want %q INDIVIDUAL", what, got.GetReferenceId(), got.GetType(), ref)
	}
	d, ok := got.GetIndividualDetailOk()
	if !ok || d == nil || d.GetGivenNames() != "Siti" || d.GetSurname() != "Rahayu" {
		t.Errorf("%s: individual_detail %+v, want Siti Rahayu", what, d)
	}
	if bd, _ := got.GetBusinessDetailOk(); bd != nil {
		t.Errorf("%s: business_detail is set on an INDIVIDUAL customer", what)
	}
	if got.GetEmail() != email || got.GetMobileNumber() != "+6281234567890" {
		t.Errorf("%s: email %q mobile_number %q", what, got.GetEmail(), got.GetMobileNumber())
	}
	if got.GetDescription() != "PLN prepaid meter 1234" {
		t.Errorf("%s: description %q", what, got.GetDescription())
	}
	addrs := got.GetAddresses()
	if len(addrs) != 1 {
		t.Fatalf("%s: %d addresses, want 1", what, len(addrs))
	}
	a := addrs[0]
	if a.GetCountry() != "ID" || a.GetStreetLine1() != "Jl. Sudirman No. 1" || a.GetCity() != "Jakarta Selatan" ||
		a.GetProvinceState() != "DKI Jakarta" || a.GetPostalCode() != "12190" || a.GetCategory() != "HOME" || !a.GetIsPrimary() {
		t.Errorf("%s: address country=%q street_line1=%q city=%q province_state=%q postal_code=%q category=%q is_primary=%v",
			what, a.GetCountry(), a.GetStreetLine1(), a.GetCity(), a.GetProvinceState(), a.GetPostalCode(), a.GetCategory(), a.GetIsPrimary())
	}
	if l2, _ := a.GetStreetLine2Ok(); l2 != nil {
		t.Errorf("%s: street_line2 %q, want none", what, a.GetStreetLine2())
	}
	md := got.GetMetadata()
	if len(md) != 2 || md["meter_no"] != "PLN-1234" || md["tariff"] != "R1" {
		t.Errorf("%s: metadata %v", what, md)
	}
	if got.GetCreated().IsZero() || got.GetUpdated().Before(got.GetCreated()) {
		t.Errorf("%s: created %v updated %v", what, got.GetCreated(), got.GetUpdated())
	}
}

func TestXenditSDKCustomerLifecycle(t *testing.T) {
	b := setup(t)
	c := xenditClient(t, b, b.key)
	ctx := context.Background()
	const ref = "pln-meter-1234"

	// 1. Create, with an idempotency key.
	req := sitiRequest(ref, "siti@example.com")
	created, resp, xerr := c.CustomerApi.CreateCustomer(ctx).IdempotencyKey("create-siti-1").CustomerRequest(req).Execute()
	noSDKError(t, "CreateCustomer", xerr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CreateCustomer: HTTP %d, want 200", resp.StatusCode)
	}
	checkSiti(t, "CreateCustomer", created, ref, "siti@example.com")
	if !created.GetCreated().Equal(sandboxStart) || !created.GetUpdated().Equal(sandboxStart) {
		t.Errorf("CreateCustomer: created %v updated %v, want the sandbox clock's %v", created.GetCreated(), created.GetUpdated(), sandboxStart)
	}
	id := created.GetId()

	// 2. The same request with the same key is replayed: same customer, no
	// second one.
	replay, resp, xerr := c.CustomerApi.CreateCustomer(ctx).IdempotencyKey("create-siti-1").CustomerRequest(sitiRequest(ref, "siti@example.com")).Execute()
	noSDKError(t, "CreateCustomer replay", xerr)
	if replay.GetId() != id {
		t.Fatalf("CreateCustomer replay: id %s, want %s", replay.GetId(), id)
	}
	if resp.Header.Get("idempotent-replayed") != "true" {
		t.Errorf("CreateCustomer replay: idempotent-replayed header %q, want true", resp.Header.Get("idempotent-replayed"))
	}
	checkSiti(t, "CreateCustomer replay", replay, ref, "siti@example.com")
	if got := byReference(t, c, ref); len(got) != 1 || got[0].GetId() != id {
		t.Fatalf("after the replay GetCustomerByReferenceID finds %d customers, want only %s", len(got), id)
	}

	// 3. Fetch by id and by reference.
	got, resp, xerr := c.CustomerApi.GetCustomer(ctx, id).Execute()
	noSDKError(t, "GetCustomer", xerr)
	if resp.StatusCode != http.StatusOK || got.GetId() != id {
		t.Fatalf("GetCustomer: HTTP %d id %s, want 200 %s", resp.StatusCode, got.GetId(), id)
	}
	checkSiti(t, "GetCustomer", got, ref, "siti@example.com")
	if !got.GetCreated().Equal(created.GetCreated()) || !got.GetUpdated().Equal(created.GetUpdated()) {
		t.Errorf("GetCustomer: created %v updated %v, want %v %v", got.GetCreated(), got.GetUpdated(), created.GetCreated(), created.GetUpdated())
	}
	list := byReference(t, c, ref)
	if len(list) != 1 {
		t.Fatalf("GetCustomerByReferenceID: %d customers, want 1", len(list))
	}
	checkSiti(t, "GetCustomerByReferenceID", &list[0], ref, "siti@example.com")
	if list[0].GetId() != id {
		t.Errorf("GetCustomerByReferenceID: id %s, want %s", list[0].GetId(), id)
	}
	if none := byReference(t, c, "no-such-reference"); len(none) != 0 {
		t.Errorf("GetCustomerByReferenceID of an unknown reference: %d customers, want none", len(none))
	}

	// 4. Update email and description; everything else stays.
	patch := *customer.NewPatchCustomer()
	patch.SetEmail("siti.rahayu@example.co.id")
	patch.SetDescription("PLN prepaid meter 1234, moved to postpaid")
	updated, resp, xerr := c.CustomerApi.UpdateCustomer(ctx, id).PatchCustomer(patch).Execute()
	noSDKError(t, "UpdateCustomer", xerr)
	if resp.StatusCode != http.StatusOK || updated.GetId() != id || updated.GetReferenceId() != ref {
		t.Fatalf("UpdateCustomer: HTTP %d id %s reference_id %s", resp.StatusCode, updated.GetId(), updated.GetReferenceId())
	}
	if updated.GetEmail() != "siti.rahayu@example.co.id" || updated.GetDescription() != "PLN prepaid meter 1234, moved to postpaid" {
		t.Errorf("UpdateCustomer: email %q description %q", updated.GetEmail(), updated.GetDescription())
	}
	if d := updated.GetIndividualDetail(); d.GetGivenNames() != "Siti" || d.GetSurname() != "Rahayu" ||
		updated.GetMobileNumber() != "+6281234567890" || len(updated.GetAddresses()) != 1 || updated.GetMetadata()["meter_no"] != "PLN-1234" {
		t.Errorf("UpdateCustomer changed fields it was not sent: %+v", updated)
	}
	if !updated.GetCreated().Equal(created.GetCreated()) {
		t.Errorf("UpdateCustomer: created %v, want %v", updated.GetCreated(), created.GetCreated())
	}
	got, _, xerr = c.CustomerApi.GetCustomer(ctx, id).Execute()
	noSDKError(t, "GetCustomer after update", xerr)
	if got.GetEmail() != "siti.rahayu@example.co.id" || got.GetDescription() != "PLN prepaid meter 1234, moved to postpaid" {
		t.Errorf("GetCustomer after update: email %q description %q", got.GetEmail(), got.GetDescription())
	}

	// A field set to null through the SDK is cleared.
	unset := *customer.NewPatchCustomer()
	unset.SetDescriptionNil()
	cleared, _, xerr := c.CustomerApi.UpdateCustomer(ctx, id).PatchCustomer(unset).Execute()
	noSDKError(t, "UpdateCustomer description=null", xerr)
	if v, _ := cleared.GetDescriptionOk(); v != nil {
		t.Errorf("UpdateCustomer description=null: description %q, want null", *v)
	}
	if cleared.GetEmail() != "siti.rahayu@example.co.id" {
		t.Errorf("UpdateCustomer description=null: email %q changed", cleared.GetEmail())
	}
}

func TestXenditSDKCustomerErrors(t *testing.T) {
	b := setup(t)
	c := xenditClient(t, b, b.key)
	ctx := context.Background()
	_, otherKey := b.newBusiness(business.ModeSandbox)
	other := xenditClient(t, b, otherKey)

	const ref = "pln-meter-5678"
	first, _, xerr := c.CustomerApi.CreateCustomer(ctx).IdempotencyKey("errors-first").CustomerRequest(sitiRequest(ref, "siti@example.com")).Execute()
	noSDKError(t, "CreateCustomer", xerr)
	id := first.GetId()

	t.Run("invalid mobile_number", func(t *testing.T) {
		req := sitiRequest("bad-mobile", "siti@example.com")
		req.SetMobileNumber("081234567890") // local format, not E.164
		cust, resp, xerr := c.CustomerApi.CreateCustomer(ctx).IdempotencyKey("bad-mobile").CustomerRequest(req).Execute()
		wantSDKError(t, "CreateCustomer mobile_number=081234567890", resp, xerr, http.StatusBadRequest, "API_VALIDATION_ERROR", "mobile_number")
		if cust != nil && cust.GetId() != "" {
			t.Errorf("a rejected create returned customer %s", cust.GetId())
		}
		if n := len(byReference(t, c, "bad-mobile")); n != 0 {
			t.Errorf("a rejected create stored %d customers", n)
		}
	})

	t.Run("invalid email", func(t *testing.T) {
		_, resp, xerr := c.CustomerApi.CreateCustomer(ctx).CustomerRequest(sitiRequest("bad-email", "not-an-email")).Execute()
		wantSDKError(t, "CreateCustomer email=not-an-email", resp, xerr, http.StatusBadRequest, "API_VALIDATION_ERROR", "email")
	})

	t.Run("invalid email on update", func(t *testing.T) {
		patch := *customer.NewPatchCustomer()
		patch.SetEmail("siti@")
		_, resp, xerr := c.CustomerApi.UpdateCustomer(ctx, id).PatchCustomer(patch).Execute()
		wantSDKError(t, "UpdateCustomer email=siti@", resp, xerr, http.StatusBadRequest, "API_VALIDATION_ERROR", "email")
		got, _, xerr := c.CustomerApi.GetCustomer(ctx, id).Execute()
		noSDKError(t, "GetCustomer", xerr)
		if got.GetEmail() != "siti@example.com" {
			t.Errorf("a rejected update changed email to %q", got.GetEmail())
		}
	})

	t.Run("unknown id", func(t *testing.T) {
		_, resp, xerr := c.CustomerApi.GetCustomer(ctx, unknownCustomerID).Execute()
		wantSDKError(t, "GetCustomer unknown id", resp, xerr, http.StatusNotFound, "DATA_NOT_FOUND", "")
		_, resp, xerr = c.CustomerApi.GetCustomer(ctx, "not-a-customer-id").Execute()
		wantSDKError(t, "GetCustomer malformed id", resp, xerr, http.StatusNotFound, "DATA_NOT_FOUND", "")
		patch := *customer.NewPatchCustomer()
		patch.SetDescription("x")
		_, resp, xerr = c.CustomerApi.UpdateCustomer(ctx, unknownCustomerID).PatchCustomer(patch).Execute()
		wantSDKError(t, "UpdateCustomer unknown id", resp, xerr, http.StatusNotFound, "DATA_NOT_FOUND", "")
	})

	t.Run("another business's customer", func(t *testing.T) {
		_, resp, xerr := other.CustomerApi.GetCustomer(ctx, id).Execute()
		wantSDKError(t, "GetCustomer with another business's key", resp, xerr, http.StatusNotFound, "DATA_NOT_FOUND", "")
		if n := len(byReference(t, other, ref)); n != 0 {
			t.Errorf("another business finds %d customers with reference %s", n, ref)
		}
		// The reference_id is unique per business only.
		theirs, _, xerr := other.CustomerApi.CreateCustomer(ctx).CustomerRequest(sitiRequest(ref, "siti@example.com")).Execute()
		noSDKError(t, "CreateCustomer same reference_id in another business", xerr)
		if theirs.GetId() == id {
			t.Errorf("two businesses share customer %s", id)
		}
	})

	t.Run("duplicate reference_id", func(t *testing.T) {
		_, resp, xerr := c.CustomerApi.CreateCustomer(ctx).IdempotencyKey("errors-second").CustomerRequest(sitiRequest(ref, "other@example.com")).Execute()
		wantSDKError(t, "CreateCustomer duplicate reference_id", resp, xerr, http.StatusConflict, "DUPLICATE_ERROR", "reference_id")
		if got := byReference(t, c, ref); len(got) != 1 || got[0].GetId() != id || got[0].GetEmail() != "siti@example.com" {
			t.Errorf("after the duplicate, reference %s finds %d customers", ref, len(got))
		}
	})

	t.Run("idempotency key reused with another body", func(t *testing.T) {
		_, resp, xerr := c.CustomerApi.CreateCustomer(ctx).IdempotencyKey("errors-first").CustomerRequest(sitiRequest("pln-meter-9999", "siti@example.com")).Execute()
		wantSDKError(t, "CreateCustomer reused key", resp, xerr, http.StatusConflict, "IDEMPOTENCY_ERROR", "")
		if n := len(byReference(t, c, "pln-meter-9999")); n != 0 {
			t.Errorf("the rejected request stored %d customers", n)
		}
	})

	t.Run("wrong API key", func(t *testing.T) {
		bad := xenditClient(t, b, "sk_test_"+strings.Repeat("0", 48))
		_, resp, xerr := bad.CustomerApi.GetCustomer(ctx, id).Execute()
		wantSDKError(t, "GetCustomer with a wrong key", resp, xerr, http.StatusUnauthorized, "INVALID_API_KEY", "")
		_, resp, xerr = bad.CustomerApi.CreateCustomer(ctx).IdempotencyKey("wrong-key").CustomerRequest(sitiRequest("wrong-key", "siti@example.com")).Execute()
		wantSDKError(t, "CreateCustomer with a wrong key", resp, xerr, http.StatusUnauthorized, "INVALID_API_KEY", "")
		if n := len(byReference(t, c, "wrong-key")); n != 0 {
			t.Errorf("an unauthenticated create stored %d customers", n)
		}
	})
}

func TestXenditSDKBusinessCustomer(t *testing.T) {
	b := setup(t)
	c := xenditClient(t, b, b.key)
	ctx := context.Background()

	req := *customer.NewCustomerRequest("pt-maju-1")
	req.SetType("BUSINESS")
	bd := customer.NewBusinessDetail()
	bd.SetBusinessName("PT Maju Jaya")
	bd.SetBusinessType("CORPORATION")
	req.SetBusinessDetail(*bd)
	bank := customer.AccountBank{}
	bank.SetAccountNumber("1234567890")
	bank.SetAccountHolderName("PT Maju Jaya")
	ia := customer.NewIdentityAccountRequest()
	ia.SetType(customer.IDENTITYACCOUNTTYPE_BANK_ACCOUNT)
	ia.SetCompany("BCA")
	ia.SetCountry("ID")
	ia.SetProperties(customer.IdentityAccountRequestProperties{AccountBank: &bank})
	req.SetIdentityAccounts([]customer.IdentityAccountRequest{*ia})

	created, _, xerr := c.CustomerApi.CreateCustomer(ctx).IdempotencyKey("pt-maju").CustomerRequest(req).Execute()
	noSDKError(t, "CreateCustomer BUSINESS", xerr)
	got, _, xerr := c.CustomerApi.GetCustomer(ctx, created.GetId()).Execute()
	noSDKError(t, "GetCustomer BUSINESS", xerr)
	for what, cust := range map[string]*customer.Customer{"CreateCustomer": created, "GetCustomer": got} {
		if cust.GetType() != "BUSINESS" || cust.GetReferenceId() != "pt-maju-1" {
			t.Errorf("%s: type %q reference_id %q", what, cust.GetType(), cust.GetReferenceId())
		}
		if d := cust.GetBusinessDetail(); d.GetBusinessName() != "PT Maju Jaya" || d.GetBusinessType() != "CORPORATION" {
			t.Errorf("%s: business_detail %q %q", what, d.GetBusinessName(), d.GetBusinessType())
		}
		if d, _ := cust.GetIndividualDetailOk(); d != nil {
			t.Errorf("%s: individual_detail set on a BUSINESS customer", what)
		}
		accts := cust.GetIdentityAccounts()
		if len(accts) != 1 {
			t.Fatalf("%s: %d identity_accounts, want 1", what, len(accts))
		}
		a := accts[0]
		if a.GetType() != "BANK_ACCOUNT" || a.GetCompany() != "BCA" || a.GetCountry() != "ID" ||
			a.Properties.AccountBank == nil || a.Properties.AccountBank.GetAccountNumber() != "1234567890" ||
			a.Properties.AccountBank.GetAccountHolderName() != "PT Maju Jaya" {
			t.Errorf("%s: identity account type=%q company=%q country=%q properties=%+v", what, a.GetType(), a.GetCompany(), a.GetCountry(), a.Properties.AccountBank)
		}
	}
}
