-- Drops the foreign key to businesses of the tables whose rows also
-- reference their customer by (business_id, customer_id), a NOT NULL
-- pair: the customer row exists with that business_id, and customers'
-- own foreign key guarantees the business exists. The checks dropped were
-- a second look-up (and row lock on the business row, shared by every
-- writer of the business) per row written; charging writes three such
-- rows a cycle (payment request, payment, next cycle). Docs:
-- docs/benchmarks.md.
ALTER TABLE payment_requests DROP CONSTRAINT payment_requests_business_id_fkey;
ALTER TABLE payment_tokens DROP CONSTRAINT payment_tokens_business_id_fkey;
ALTER TABLE payments DROP CONSTRAINT payments_business_id_fkey;
ALTER TABLE notifications DROP CONSTRAINT notifications_business_id_fkey;
ALTER TABLE recurring_plans DROP CONSTRAINT recurring_plans_business_id_fkey;
ALTER TABLE recurring_cycles DROP CONSTRAINT recurring_cycles_business_id_fkey;
ALTER TABLE invoices DROP CONSTRAINT invoices_business_id_fkey;
