-- NOT VALID: zero-amount Pay and Saves made while this migration was
-- applied stay; new rows are checked as before it.
ALTER TABLE payments DROP CONSTRAINT payments_amount_check,
    ADD CONSTRAINT payments_amount_check CHECK (amount > 0) NOT VALID;
ALTER TABLE payment_requests DROP CONSTRAINT payment_requests_request_amount_check,
    ADD CONSTRAINT payment_requests_request_amount_check CHECK (request_amount > 0) NOT VALID;
DROP TABLE recurring_cycles;
DROP TABLE recurring_plans;
DROP TABLE recurring_schedules;
