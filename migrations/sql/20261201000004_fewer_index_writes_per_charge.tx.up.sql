-- Fewer index entries written per charge (docs/benchmarks.md):
--
-- cycle_attempts_payment_request served no query: attempts are found by
-- their provider key, or by their cycle. Without it, recording an
-- attempt's outcome (status, payment_request_id, failure_code, retry
-- time) changes no indexed column, so the update can stay on its page
-- (HOT) when the page has room, which fillfactor 50 leaves, as on
-- invoices and plans.
--
-- recurring_cycles_plan (plan_id, id) is served by the unique
-- (plan_id, cycle_number): a plan's cycles are found by plan_id, and a
-- page of them sorted by id in memory (a plan has a dozen a year).
--
-- The unique (business_id, idempotency_key) of payment_requests indexed
-- every request, though only those made through the API with an
-- Idempotency-Key have one; the engine's charges have none. A partial
-- unique index keeps the same guarantee for the keys that exist.
DROP INDEX cycle_attempts_payment_request;
ALTER TABLE cycle_attempts SET (fillfactor = 50);
DROP INDEX recurring_cycles_plan;
CREATE UNIQUE INDEX payment_requests_idempotency_key ON payment_requests (business_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE payment_requests DROP CONSTRAINT payment_requests_business_id_idempotency_key_key;
