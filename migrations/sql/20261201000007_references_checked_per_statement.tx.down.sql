SELECT drop_reference(tab, name, parent) FROM (VALUES
    ('cycle_attempts', 'cycle_ref', 'recurring_cycles'), ('payment_requests', 'token_ref', 'payment_tokens'),
    ('payment_requests', 'customer_ref', 'customers'), ('payments', 'request_ref', 'payment_requests'),
    ('payments', 'customer_ref', 'customers'), ('payments', 'token_ref', 'payment_tokens'),
    ('provider_callbacks', 'business_ref', 'businesses'), ('sandbox_payments', 'token_ref', 'sandbox_tokens'),
    ('sandbox_payments', 'business_ref', 'businesses'), ('sandbox_callbacks', 'payment_ref', 'sandbox_payments'),
    ('sandbox_callbacks', 'business_ref', 'businesses'), ('recurring_cycles', 'customer_ref', 'customers'),
    ('recurring_cycles', 'plan_ref', 'recurring_plans'), ('invoice_audit', 'invoice_ref', 'invoices')
) AS r(tab, name, parent);
DROP TRIGGER businesses_key_fixed ON businesses;
DROP TRIGGER customers_key_fixed ON customers;
DROP TRIGGER payment_tokens_key_fixed ON payment_tokens;
DROP TRIGGER payment_requests_key_fixed ON payment_requests;
DROP TRIGGER recurring_plans_key_fixed ON recurring_plans;
DROP TRIGGER recurring_cycles_key_fixed ON recurring_cycles;
DROP TRIGGER invoices_key_fixed ON invoices;
DROP TRIGGER sandbox_tokens_key_fixed ON sandbox_tokens;
DROP TRIGGER sandbox_payments_key_fixed ON sandbox_payments;
DROP FUNCTION add_reference(text, text, text, text[], text[]);
DROP FUNCTION drop_reference(text, text, text);
DROP FUNCTION check_reference();
DROP FUNCTION keep_referenced();
DROP FUNCTION refuse_key_change();

ALTER TABLE cycle_attempts ADD CONSTRAINT cycle_attempts_business_id_cycle_id_fkey
    FOREIGN KEY (business_id, cycle_id) REFERENCES recurring_cycles (business_id, id);
ALTER TABLE payment_requests ADD CONSTRAINT payment_requests_payment_token_fkey
    FOREIGN KEY (business_id, payment_token_id) REFERENCES payment_tokens (business_id, id);
ALTER TABLE payment_requests ADD CONSTRAINT payment_requests_business_id_customer_id_fkey
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id);
ALTER TABLE payments ADD CONSTRAINT payments_business_id_payment_request_id_fkey
    FOREIGN KEY (business_id, payment_request_id) REFERENCES payment_requests (business_id, id);
ALTER TABLE payments ADD CONSTRAINT payments_business_id_customer_id_fkey
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id);
ALTER TABLE payments ADD CONSTRAINT payments_business_id_payment_token_id_fkey
    FOREIGN KEY (business_id, payment_token_id) REFERENCES payment_tokens (business_id, id);
ALTER TABLE provider_callbacks ADD CONSTRAINT provider_callbacks_business_id_fkey
    FOREIGN KEY (business_id) REFERENCES businesses (id);
ALTER TABLE sandbox_payments ADD CONSTRAINT sandbox_payments_token_id_fkey FOREIGN KEY (token_id) REFERENCES sandbox_tokens (id);
ALTER TABLE sandbox_payments ADD CONSTRAINT sandbox_payments_business_id_fkey FOREIGN KEY (business_id) REFERENCES businesses (id);
ALTER TABLE sandbox_callbacks ADD CONSTRAINT sandbox_callbacks_payment_id_fkey FOREIGN KEY (payment_id) REFERENCES sandbox_payments (id);
ALTER TABLE sandbox_callbacks ADD CONSTRAINT sandbox_callbacks_business_id_fkey FOREIGN KEY (business_id) REFERENCES businesses (id);
ALTER TABLE recurring_cycles ADD CONSTRAINT recurring_cycles_business_id_customer_id_fkey
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id);
ALTER TABLE recurring_cycles ADD CONSTRAINT recurring_cycles_business_id_plan_id_fkey
    FOREIGN KEY (business_id, plan_id) REFERENCES recurring_plans (business_id, id);
ALTER TABLE invoice_audit ADD CONSTRAINT invoice_audit_invoice_id_fkey FOREIGN KEY (invoice_id) REFERENCES invoices (id);
