// Package customers stores the utility's customers in Xendit's customer
// shape (SPEC §4.1), plus the engine's service status, and validates what
// callers send for them.
package customers

import (
	"encoding/json"
	"time"

	"github.com/tagihan/billing"
	"github.com/uptrace/bun"
)

// Customer types.
const (
	TypeIndividual = "INDIVIDUAL"
	TypeBusiness   = "BUSINESS"
)

// Service statuses (SPEC §4.8).
const (
	ServiceActive    = "ACTIVE"
	ServiceSuspended = "SUSPENDED"
)

// Customer is one of a business's customers.
type Customer struct {
	bun.BaseModel `bun:"table:customers"`

	ID                  string                     `bun:"id,pk"`
	BusinessID          string                     `bun:"business_id"`
	ReferenceID         string                     `bun:"reference_id"`
	Type                string                     `bun:"type"`
	IndividualDetail    *IndividualDetail          `bun:"individual_detail,type:jsonb"`
	BusinessDetail      *BusinessDetail            `bun:"business_detail,type:jsonb"`
	Email               *string                    `bun:"email"`
	MobileNumber        *string                    `bun:"mobile_number"`
	PhoneNumber         *string                    `bun:"phone_number"`
	Description         *string                    `bun:"description"`
	Addresses           []Address                  `bun:"addresses,type:jsonb"`
	IdentityAccounts    []json.RawMessage          `bun:"identity_accounts,type:jsonb"`
	KYCDocuments        []json.RawMessage          `bun:"kyc_documents,type:jsonb"`
	Metadata            map[string]json.RawMessage `bun:"metadata,type:jsonb"`
	ServiceStatus       string                     `bun:"service_status"`
	ServiceStatusReason *string                    `bun:"service_status_reason"`
	ServiceStatusSince  *time.Time                 `bun:"service_status_since"`
	Created             time.Time                  `bun:"created"`
	Updated             time.Time                  `bun:"updated"`
}

// IndividualDetail describes a person (Xendit's individual_detail).
type IndividualDetail struct {
	GivenNames         *string     `json:"given_names,omitempty"`
	GivenNamesNonRoman *string     `json:"given_names_non_roman,omitempty"`
	MiddleName         *string     `json:"middle_name,omitempty"`
	Surname            *string     `json:"surname,omitempty"`
	SurnameNonRoman    *string     `json:"surname_non_roman,omitempty"`
	MotherMaidenName   *string     `json:"mother_maiden_name,omitempty"`
	Gender             *string     `json:"gender,omitempty"`
	DateOfBirth        *string     `json:"date_of_birth,omitempty"`
	Nationality        *string     `json:"nationality,omitempty"`
	PlaceOfBirth       *string     `json:"place_of_birth,omitempty"`
	Employment         *Employment `json:"employment,omitempty"`
}

// Employment is a person's employer (Xendit's employment detail).
type Employment struct {
	EmployerName     *string `json:"employer_name,omitempty"`
	NatureOfBusiness *string `json:"nature_of_business,omitempty"`
	RoleDescription  *string `json:"role_description,omitempty"`
}

// BusinessDetail describes a company customer (Xendit's business_detail).
type BusinessDetail struct {
	BusinessName       *string `json:"business_name,omitempty"`
	BusinessType       *string `json:"business_type,omitempty"`
	NatureOfBusiness   *string `json:"nature_of_business,omitempty"`
	BusinessDomicile   *string `json:"business_domicile,omitempty"`
	DateOfRegistration *string `json:"date_of_registration,omitempty"`
}

// Address is a postal address as Xendit returns it. On input the engine
// also accepts the names of Xendit's newer address request (country_code,
// line_1, line_2) and stores them under these.
type Address struct {
	Country       string  `json:"country"`
	StreetLine1   *string `json:"street_line1,omitempty"`
	StreetLine2   *string `json:"street_line2,omitempty"`
	City          *string `json:"city,omitempty"`
	ProvinceState *string `json:"province_state,omitempty"`
	PostalCode    *string `json:"postal_code,omitempty"`
	Category      *string `json:"category,omitempty"`
	IsPrimary     *bool   `json:"is_primary,omitempty"`
}

// view is the customer as the API returns it.
type view struct {
	ID               string                     `json:"id"`
	ReferenceID      string                     `json:"reference_id"`
	Type             string                     `json:"type"`
	IndividualDetail *IndividualDetail          `json:"individual_detail"`
	BusinessDetail   *BusinessDetail            `json:"business_detail"`
	Email            *string                    `json:"email"`
	MobileNumber     *string                    `json:"mobile_number"`
	PhoneNumber      *string                    `json:"phone_number"`
	Description      *string                    `json:"description"`
	Addresses        []Address                  `json:"addresses"`
	IdentityAccounts []json.RawMessage          `json:"identity_accounts"`
	KYCDocuments     []json.RawMessage          `json:"kyc_documents"`
	Metadata         map[string]json.RawMessage `json:"metadata"`
	ServiceStatus    string                     `json:"service_status"`
	Created          string                     `json:"created"`
	Updated          string                     `json:"updated"`
}

// MarshalJSON writes the customer in Xendit's shape with the engine's
// service_status; absent optional fields are null, lists are never null.
func (c *Customer) MarshalJSON() ([]byte, error) {
	v := view{
		ID:               c.ID,
		ReferenceID:      c.ReferenceID,
		Type:             c.Type,
		IndividualDetail: c.IndividualDetail,
		BusinessDetail:   c.BusinessDetail,
		Email:            c.Email,
		MobileNumber:     c.MobileNumber,
		PhoneNumber:      c.PhoneNumber,
		Description:      c.Description,
		Addresses:        nonNil(c.Addresses),
		IdentityAccounts: nonNil(c.IdentityAccounts),
		KYCDocuments:     nonNil(c.KYCDocuments),
		Metadata:         c.Metadata,
		ServiceStatus:    c.ServiceStatus,
		Created:          billing.FormatTime(c.Created),
		Updated:          billing.FormatTime(c.Updated),
	}
	return json.Marshal(v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
