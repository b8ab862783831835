ALTER TABLE recurring_cycles ADD CONSTRAINT recurring_cycles_business_id_id_key UNIQUE (business_id, id);
ALTER TABLE payment_requests ADD CONSTRAINT payment_requests_business_id_id_key UNIQUE (business_id, id);
DROP TRIGGER invoices_cycle_ref ON invoices;
DROP TRIGGER invoices_cycle_ref_update ON invoices;
DROP TRIGGER invoices_cycle_ref_delete ON recurring_cycles;
DROP TRIGGER payment_tokens_consent_ref ON payment_tokens;
DROP TRIGGER payment_tokens_consent_ref_update ON payment_tokens;
DROP TRIGGER payment_tokens_consent_ref_delete ON payment_requests;
DROP TRIGGER recurring_plans_auth_ref ON recurring_plans;
DROP TRIGGER recurring_plans_auth_ref_update ON recurring_plans;
DROP TRIGGER recurring_plans_auth_ref_delete ON payment_requests;
ALTER TABLE invoices ADD CONSTRAINT invoices_business_id_cycle_id_fkey
    FOREIGN KEY (business_id, cycle_id) REFERENCES recurring_cycles (business_id, id);
ALTER TABLE payment_tokens ADD CONSTRAINT payment_tokens_business_id_consent_payment_request_id_fkey
    FOREIGN KEY (business_id, consent_payment_request_id) REFERENCES payment_requests (business_id, id);
ALTER TABLE recurring_plans ADD CONSTRAINT recurring_plans_business_id_auth_payment_request_id_fkey
    FOREIGN KEY (business_id, auth_payment_request_id) REFERENCES payment_requests (business_id, id);
