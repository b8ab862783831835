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

-- invoices (business_id, cycle_id) → recurring_cycles
CREATE TRIGGER invoices_cycle_ref AFTER INSERT ON invoices REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_reference('recurring_cycles', 'business_id', 'business_id', 'cycle_id', 'id');
CREATE TRIGGER invoices_cycle_ref_update BEFORE UPDATE OF business_id, cycle_id ON invoices FOR EACH ROW
    WHEN (OLD.business_id IS DISTINCT FROM NEW.business_id OR OLD.cycle_id IS DISTINCT FROM NEW.cycle_id)
    EXECUTE FUNCTION check_reference('recurring_cycles', 'business_id', 'business_id', 'cycle_id', 'id');
CREATE TRIGGER invoices_cycle_ref_delete BEFORE DELETE ON recurring_cycles FOR EACH ROW
    EXECUTE FUNCTION keep_referenced('invoices', 'business_id', 'business_id', 'id', 'cycle_id');

-- payment_tokens (business_id, consent_payment_request_id) → payment_requests
CREATE TRIGGER payment_tokens_consent_ref AFTER INSERT ON payment_tokens REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_reference('payment_requests', 'business_id', 'business_id', 'consent_payment_request_id', 'id');
CREATE TRIGGER payment_tokens_consent_ref_update BEFORE UPDATE OF business_id, consent_payment_request_id ON payment_tokens FOR EACH ROW
    WHEN (OLD.business_id IS DISTINCT FROM NEW.business_id OR OLD.consent_payment_request_id IS DISTINCT FROM NEW.consent_payment_request_id)
    EXECUTE FUNCTION check_reference('payment_requests', 'business_id', 'business_id', 'consent_payment_request_id', 'id');
CREATE TRIGGER payment_tokens_consent_ref_delete BEFORE DELETE ON payment_requests FOR EACH ROW
    EXECUTE FUNCTION keep_referenced('payment_tokens', 'business_id', 'business_id', 'id', 'consent_payment_request_id');

-- recurring_plans (business_id, auth_payment_request_id) → payment_requests
CREATE TRIGGER recurring_plans_auth_ref AFTER INSERT ON recurring_plans REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_reference('payment_requests', 'business_id', 'business_id', 'auth_payment_request_id', 'id');
CREATE TRIGGER recurring_plans_auth_ref_update BEFORE UPDATE OF business_id, auth_payment_request_id ON recurring_plans FOR EACH ROW
    WHEN (OLD.business_id IS DISTINCT FROM NEW.business_id OR OLD.auth_payment_request_id IS DISTINCT FROM NEW.auth_payment_request_id)
    EXECUTE FUNCTION check_reference('payment_requests', 'business_id', 'business_id', 'auth_payment_request_id', 'id');
CREATE TRIGGER recurring_plans_auth_ref_delete BEFORE DELETE ON payment_requests FOR EACH ROW
    EXECUTE FUNCTION keep_referenced('recurring_plans', 'business_id', 'business_id', 'id', 'auth_payment_request_id');

ALTER TABLE recurring_cycles DROP CONSTRAINT recurring_cycles_business_id_id_key;
ALTER TABLE payment_requests DROP CONSTRAINT payment_requests_business_id_id_key;
