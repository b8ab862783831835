-- Charging writes each cycle three times (two updates that move its next
-- step, then its successor's insert) and each payment request twice
-- (insert, then the update that records its answer); none of those
-- updates can stay on its page (HOT), since each changes an indexed
-- column, so every write adds an entry to every index of the table. Two
-- of those indexes, UNIQUE (business_id, id) on recurring_cycles and on
-- payment_requests, served no query (the primary key on id serves the
-- look-ups by id) and existed only as the targets of composite foreign
-- keys. The last three such keys become statement checks, as in migration
-- 20261201000007 (check_reference probes the primary key and compares the
-- business), and the two unique constraints go: five fewer index entries
-- a charge. docs/architecture.md, "References".
ALTER TABLE invoices DROP CONSTRAINT invoices_business_id_cycle_id_fkey;
ALTER TABLE payment_tokens DROP CONSTRAINT payment_tokens_business_id_consent_payment_request_id_fkey;
ALTER TABLE recurring_plans DROP CONSTRAINT recurring_plans_business_id_auth_payment_request_id_fkey;

SELECT add_reference(tab, name, parent, columns, keys) FROM (VALUES
    ('invoices', 'cycle_ref', 'recurring_cycles', ARRAY['business_id', 'cycle_id'], ARRAY['business_id', 'id']),
    ('payment_tokens', 'consent_ref', 'payment_requests', ARRAY['business_id', 'consent_payment_request_id'], ARRAY['business_id', 'id']),
    ('recurring_plans', 'auth_ref', 'payment_requests', ARRAY['business_id', 'auth_payment_request_id'], ARRAY['business_id', 'id'])
) AS r(tab, name, parent, columns, keys);

ALTER TABLE recurring_cycles DROP CONSTRAINT recurring_cycles_business_id_id_key;
ALTER TABLE payment_requests DROP CONSTRAINT payment_requests_business_id_id_key;
