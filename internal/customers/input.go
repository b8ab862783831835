package customers

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tagihan/billing"
)

// CreateParams is the body of POST /customers. Unknown fields are ignored
// (Xendit's SDKs send fields the engine does not keep).
type CreateParams struct {
	ReferenceID      string                     `json:"reference_id"`
	Type             string                     `json:"type"`
	IndividualDetail *IndividualDetail          `json:"individual_detail"`
	BusinessDetail   *BusinessDetail            `json:"business_detail"`
	Email            *string                    `json:"email"`
	MobileNumber     *string                    `json:"mobile_number"`
	PhoneNumber      *string                    `json:"phone_number"`
	Description      *string                    `json:"description"`
	Addresses        []AddressInput             `json:"addresses"`
	IdentityAccounts []json.RawMessage          `json:"identity_accounts"`
	KYCDocuments     []json.RawMessage          `json:"kyc_documents"`
	Metadata         map[string]json.RawMessage `json:"metadata"`
}

// AddressInput is an address as callers send it, in either of Xendit's two
// address shapes.
type AddressInput struct {
	Country       *string `json:"country"`
	CountryCode   *string `json:"country_code"`
	StreetLine1   *string `json:"street_line1"`
	Line1         *string `json:"line_1"`
	StreetLine2   *string `json:"street_line2"`
	Line2         *string `json:"line_2"`
	City          *string `json:"city"`
	ProvinceState *string `json:"province_state"`
	PostalCode    *string `json:"postal_code"`
	Category      *string `json:"category"`
	IsPrimary     *bool   `json:"is_primary"`
}

func (a AddressInput) address() Address {
	out := Address{
		StreetLine1:   firstSet(a.StreetLine1, a.Line1),
		StreetLine2:   firstSet(a.StreetLine2, a.Line2),
		City:          a.City,
		ProvinceState: a.ProvinceState,
		PostalCode:    a.PostalCode,
		Category:      a.Category,
		IsPrimary:     a.IsPrimary,
	}
	if c := firstSet(a.Country, a.CountryCode); c != nil {
		out.Country = *c
	}
	return out
}

func firstSet(a, b *string) *string {
	if a != nil {
		return a
	}
	return b
}

func addresses(in []AddressInput) []Address {
	if in == nil {
		return nil
	}
	out := make([]Address, len(in))
	for i, a := range in {
		out[i] = a.address()
	}
	return out
}

// DecodeCreate reads and validates a POST /customers body. Every problem is
// reported at once as an API_VALIDATION_ERROR naming the fields.
func DecodeCreate(body []byte) (CreateParams, error) {
	var p CreateParams
	if err := billing.DecodeJSON(body, &p, false); err != nil {
		return CreateParams{}, err
	}
	if p.Type == "" { // the SDK lets callers leave it out; the details say which
		switch {
		case p.IndividualDetail != nil && p.BusinessDetail == nil:
			p.Type = TypeIndividual
		case p.BusinessDetail != nil && p.IndividualDetail == nil:
			p.Type = TypeBusiness
		}
	}
	if err := validate(p.customer()); err != nil {
		return CreateParams{}, err
	}
	return p, nil
}

// customer builds the stored form of p (without ids and times).
func (p CreateParams) customer() *Customer {
	return &Customer{
		ReferenceID:      p.ReferenceID,
		Type:             p.Type,
		IndividualDetail: p.IndividualDetail,
		BusinessDetail:   p.BusinessDetail,
		Email:            p.Email,
		MobileNumber:     p.MobileNumber,
		PhoneNumber:      p.PhoneNumber,
		Description:      p.Description,
		Addresses:        addresses(p.Addresses),
		IdentityAccounts: p.IdentityAccounts,
		KYCDocuments:     p.KYCDocuments,
		Metadata:         p.Metadata,
	}
}

// PatchParams is the body of PATCH /customers/{id}. A field left out is
// kept; a field sent replaces the stored one whole (objects and lists are not
// merged); null clears an optional field. The type cannot change.
type PatchParams struct {
	ReferenceID      billing.Optional[string]                     `json:"reference_id"`
	Type             billing.Optional[string]                     `json:"type"`
	IndividualDetail billing.Optional[IndividualDetail]           `json:"individual_detail"`
	BusinessDetail   billing.Optional[BusinessDetail]             `json:"business_detail"`
	Email            billing.Optional[string]                     `json:"email"`
	MobileNumber     billing.Optional[string]                     `json:"mobile_number"`
	PhoneNumber      billing.Optional[string]                     `json:"phone_number"`
	Description      billing.Optional[string]                     `json:"description"`
	Addresses        billing.Optional[[]AddressInput]             `json:"addresses"`
	IdentityAccounts billing.Optional[[]json.RawMessage]          `json:"identity_accounts"`
	KYCDocuments     billing.Optional[[]json.RawMessage]          `json:"kyc_documents"`
	Metadata         billing.Optional[map[string]json.RawMessage] `json:"metadata"`
}

// DecodePatch reads a PATCH /customers/{id} body. Validation of the result
// happens in Apply, against the stored customer.
func DecodePatch(body []byte) (PatchParams, error) {
	var p PatchParams
	if err := billing.DecodeJSON(body, &p, false); err != nil {
		return PatchParams{}, err
	}
	return p, nil
}

// Apply changes c as p says and validates the result; on error c may be
// partly changed and must be discarded.
func (p PatchParams) Apply(c *Customer) error {
	var v billing.Validation
	if p.ReferenceID.Set {
		if v.Check(!p.ReferenceID.Null, "reference_id", "cannot be removed") {
			c.ReferenceID = p.ReferenceID.Value
		}
	}
	if p.Type.Set && (p.Type.Null || p.Type.Value != c.Type) {
		v.Add("type", fmt.Sprintf("cannot be changed (the customer is %s); create another customer instead", c.Type))
	}
	if err := v.Err(); err != nil {
		return err
	}
	if p.IndividualDetail.Set {
		c.IndividualDetail = optionalPtr(p.IndividualDetail)
	}
	if p.BusinessDetail.Set {
		c.BusinessDetail = optionalPtr(p.BusinessDetail)
	}
	setString(&c.Email, p.Email)
	setString(&c.MobileNumber, p.MobileNumber)
	setString(&c.PhoneNumber, p.PhoneNumber)
	setString(&c.Description, p.Description)
	if p.Addresses.Set {
		c.Addresses = addresses(p.Addresses.Value)
	}
	if p.IdentityAccounts.Set {
		c.IdentityAccounts = p.IdentityAccounts.Value
	}
	if p.KYCDocuments.Set {
		c.KYCDocuments = p.KYCDocuments.Value
	}
	if p.Metadata.Set {
		c.Metadata = p.Metadata.Value
	}
	return validate(c)
}

func optionalPtr[T any](o billing.Optional[T]) *T {
	if o.Null {
		return nil
	}
	v := o.Value
	return &v
}

func setString(dst **string, o billing.Optional[string]) {
	if o.Set {
		*dst = optionalPtr(o)
	}
}

// Limits on customer fields.
const (
	maxText          = 255
	maxDescription   = 1000
	maxAddresses     = 10
	maxAccountItems  = 20
	maxAccountItem   = 8 << 10
	maxMetadataKeys  = 50
	maxMetadataKey   = 40
	maxMetadataValue = 500
)

var (
	e164        = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	countryCode = regexp.MustCompile(`^[A-Z]{2}$`)
)

// validate checks a customer as it would be stored, naming fields as the
// API does.
func validate(c *Customer) error {
	var v billing.Validation
	checkText(&v, "reference_id", &c.ReferenceID, true, maxText)
	switch c.Type {
	case TypeIndividual:
		if v.Check(c.IndividualDetail != nil, "individual_detail", "is required for an INDIVIDUAL customer") {
			validateIndividual(&v, c.IndividualDetail)
		}
		v.Check(c.BusinessDetail == nil, "business_detail", "must not be given for an INDIVIDUAL customer")
	case TypeBusiness:
		if v.Check(c.BusinessDetail != nil, "business_detail", "is required for a BUSINESS customer") {
			validateBusiness(&v, c.BusinessDetail)
		}
		v.Check(c.IndividualDetail == nil, "individual_detail", "must not be given for a BUSINESS customer")
	case "":
		v.Add("type", "is required: INDIVIDUAL or BUSINESS")
	default:
		v.Add("type", "must be INDIVIDUAL or BUSINESS")
	}
	if c.Email != nil {
		if a, err := mail.ParseAddress(*c.Email); err != nil || a.Address != *c.Email || len(*c.Email) > 254 || !strings.Contains(a.Address[strings.LastIndexByte(a.Address, '@'):], ".") {
			v.Add("email", "must be an e-mail address such as name@example.com")
		}
	}
	if c.MobileNumber != nil {
		v.Check(e164.MatchString(*c.MobileNumber), "mobile_number", "must be in E.164 format, such as +6281234567890")
	}
	if c.PhoneNumber != nil {
		v.Check(e164.MatchString(*c.PhoneNumber), "phone_number", "must be in E.164 format, such as +622150001234")
	}
	checkText(&v, "description", c.Description, false, maxDescription)
	validateAddresses(&v, c.Addresses)
	validateObjects(&v, "identity_accounts", c.IdentityAccounts)
	validateObjects(&v, "kyc_documents", c.KYCDocuments)
	ValidateMetadata(&v, "metadata", c.Metadata)
	return v.Err()
}

func validateIndividual(v *billing.Validation, d *IndividualDetail) {
	const p = "individual_detail."
	if v.Check(d.GivenNames != nil, p+"given_names", "is required") {
		checkText(v, p+"given_names", d.GivenNames, true, maxText)
	}
	for _, f := range []namedText{
		{"given_names_non_roman", d.GivenNamesNonRoman}, {"middle_name", d.MiddleName}, {"surname", d.Surname},
		{"surname_non_roman", d.SurnameNonRoman}, {"mother_maiden_name", d.MotherMaidenName}, {"place_of_birth", d.PlaceOfBirth},
	} {
		checkText(v, p+f.name, f.value, false, maxText)
	}
	if d.Gender != nil {
		g := *d.Gender
		v.Check(g == "MALE" || g == "FEMALE" || g == "OTHER", p+"gender", "must be MALE, FEMALE or OTHER")
	}
	checkDate(v, p+"date_of_birth", d.DateOfBirth)
	checkCountry(v, p+"nationality", d.Nationality)
	if e := d.Employment; e != nil {
		checkText(v, p+"employment.employer_name", e.EmployerName, false, maxText)
		checkText(v, p+"employment.nature_of_business", e.NatureOfBusiness, false, maxText)
		checkText(v, p+"employment.role_description", e.RoleDescription, false, maxText)
	}
}

func validateBusiness(v *billing.Validation, d *BusinessDetail) {
	const p = "business_detail."
	if v.Check(d.BusinessName != nil, p+"business_name", "is required") {
		checkText(v, p+"business_name", d.BusinessName, true, maxText)
	}
	checkText(v, p+"business_type", d.BusinessType, false, maxText)
	checkText(v, p+"nature_of_business", d.NatureOfBusiness, false, maxText)
	checkCountry(v, p+"business_domicile", d.BusinessDomicile)
	checkDate(v, p+"date_of_registration", d.DateOfRegistration)
}

func validateAddresses(v *billing.Validation, as []Address) {
	if !v.Check(len(as) <= maxAddresses, "addresses", fmt.Sprintf("must have at most %d addresses", maxAddresses)) {
		return
	}
	primaries := 0
	for i, a := range as {
		p := fmt.Sprintf("addresses[%d].", i)
		if a.Country == "" {
			v.Add(p+"country", "is required (ISO 3166-1 alpha-2, such as ID)")
		} else {
			checkCountry(v, p+"country", &a.Country)
		}
		for _, f := range []namedText{
			{"street_line1", a.StreetLine1}, {"street_line2", a.StreetLine2}, {"city", a.City},
			{"province_state", a.ProvinceState}, {"postal_code", a.PostalCode}, {"category", a.Category},
		} {
			checkText(v, p+f.name, f.value, false, maxText)
		}
		if a.IsPrimary != nil && *a.IsPrimary {
			primaries++
		}
	}
	v.Check(primaries <= 1, "addresses", "may have at most one primary address")
}

func validateObjects(v *billing.Validation, field string, items []json.RawMessage) {
	if !v.Check(len(items) <= maxAccountItems, field, fmt.Sprintf("must have at most %d items", maxAccountItems)) {
		return
	}
	for i, raw := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		if len(raw) == 0 || raw[0] != '{' {
			v.Add(f, "must be an object")
			continue
		}
		v.Check(len(raw) <= maxAccountItem, f, fmt.Sprintf("must be at most %d bytes", maxAccountItem))
	}
}

// ValidateMetadata checks a metadata object as Xendit limits it: at most
// 50 keys of at most 40 characters, each value at most 500 characters of
// JSON.
func ValidateMetadata(v *billing.Validation, field string, m map[string]json.RawMessage) {
	if !v.Check(len(m) <= maxMetadataKeys, field, fmt.Sprintf("must have at most %d keys", maxMetadataKeys)) {
		return
	}
	for k, val := range m {
		if utf8.RuneCountInString(k) > maxMetadataKey || k == "" {
			v.Add(field, fmt.Sprintf("keys must be 1 to %d characters", maxMetadataKey))
			continue
		}
		v.Check(utf8.RuneCount(val) <= maxMetadataValue, field+"."+k, fmt.Sprintf("must be at most %d characters", maxMetadataValue))
	}
}

// namedText is an optional string field and its JSON name.
type namedText struct {
	name  string
	value *string
}

// checkText checks an optional (or, with required, mandatory) string: valid
// UTF-8 without control characters, at most max characters, and not blank
// when required.
func checkText(v *billing.Validation, field string, s *string, required bool, max int) {
	if s == nil {
		if required {
			v.Add(field, "is required")
		}
		return
	}
	switch {
	case required && strings.TrimSpace(*s) == "":
		v.Add(field, "must not be empty")
	case !utf8.ValidString(*s):
		v.Add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(*s) > max:
		v.Add(field, fmt.Sprintf("must be at most %d characters", max))
	case strings.IndexFunc(*s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) >= 0:
		v.Add(field, "must not contain control characters")
	}
}

func checkDate(v *billing.Validation, field string, s *string) {
	if s == nil {
		return
	}
	_, err := time.Parse(time.DateOnly, *s)
	v.Check(err == nil, field, "must be a date written YYYY-MM-DD")
}

func checkCountry(v *billing.Validation, field string, s *string) {
	if s == nil {
		return
	}
	v.Check(countryCode.MatchString(*s), field, "must be an ISO 3166-1 alpha-2 country code, such as ID")
}
