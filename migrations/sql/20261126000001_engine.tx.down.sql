ALTER TABLE payment_requests DROP COLUMN expires_at;
DROP TABLE pay_pages;
DROP TABLE invoice_payments;
ALTER TABLE recurring_cycles DROP COLUMN forced_attempt_count, DROP COLUMN retry_interval_count, DROP COLUMN total_retry,
    DROP COLUMN failed_attempt_notifications;
ALTER TABLE recurring_cycles DROP CONSTRAINT recurring_cycles_cycle_number_check,
    ADD CONSTRAINT recurring_cycles_cycle_number_check CHECK (cycle_number >= 1);
ALTER TABLE customers DROP COLUMN service_invoice_id, DROP COLUMN service_plan_id;
DROP TABLE cycle_attempts;
DROP TABLE credit_notes;
DROP TABLE invoice_audit;
DROP TABLE invoice_numbers;
DROP TABLE invoice_lines;
ALTER TABLE recurring_cycles DROP CONSTRAINT IF EXISTS recurring_cycles_business_id_invoice_id_fkey;
DROP TABLE invoices;
