ALTER TABLE recurring_cycles ADD CONSTRAINT recurring_cycles_business_id_id_key UNIQUE (business_id, id);
ALTER TABLE payment_requests ADD CONSTRAINT payment_requests_business_id_id_key UNIQUE (business_id, id);
SELECT drop_reference(tab, name, parent) FROM (VALUES ('invoices', 'cycle_ref', 'recurring_cycles'),
    ('payment_tokens', 'consent_ref', 'payment_requests'), ('recurring_plans', 'auth_ref', 'payment_requests')) AS r(tab, name, parent);
ALTER TABLE invoices ADD CONSTRAINT invoices_business_id_cycle_id_fkey
    FOREIGN KEY (business_id, cycle_id) REFERENCES recurring_cycles (business_id, id);
ALTER TABLE payment_tokens ADD CONSTRAINT payment_tokens_business_id_consent_payment_request_id_fkey
    FOREIGN KEY (business_id, consent_payment_request_id) REFERENCES payment_requests (business_id, id);
ALTER TABLE recurring_plans ADD CONSTRAINT recurring_plans_business_id_auth_payment_request_id_fkey
    FOREIGN KEY (business_id, auth_payment_request_id) REFERENCES payment_requests (business_id, id);
