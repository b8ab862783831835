ALTER TABLE payment_requests ADD CONSTRAINT payment_requests_business_id_idempotency_key_key UNIQUE (business_id, idempotency_key);
DROP INDEX payment_requests_idempotency_key;
CREATE INDEX recurring_cycles_plan ON recurring_cycles (plan_id, id);
ALTER TABLE cycle_attempts RESET (fillfactor);
CREATE INDEX cycle_attempts_payment_request ON cycle_attempts (payment_request_id) WHERE payment_request_id IS NOT NULL;
