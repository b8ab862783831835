-- A cycle's customer is its plan's, and a payment's customer is its
-- payment request's. Each was checked against customers on its own (a
-- probe of the customers' primary key and a FOR KEY SHARE lock per row,
-- migration 20261201000007), and nothing made it the parent's customer.
-- Now each row's customer is compared on the parent row that its plan or
-- request reference already finds: one probe fewer per cycle and per
-- payment when charging, and a cycle or payment whose customer is not its
-- parent's is refused (foreign_key_violation). The parent's own reference
-- to customers stays, so the customer still exists and cannot be deleted
-- while the parent, which cannot be deleted while referenced, names it. A
-- plan's and a payment request's customer therefore never change
-- (refuse_key_change). docs/architecture.md, "References".
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM recurring_cycles AS c JOIN recurring_plans AS p ON p.id = c.plan_id
            WHERE (p.business_id, p.customer_id) IS DISTINCT FROM (c.business_id, c.customer_id)) THEN
        RAISE EXCEPTION 'a cycle''s customer is not its plan''s';
    END IF;
    IF EXISTS (SELECT 1 FROM payments AS y JOIN payment_requests AS r ON r.id = y.payment_request_id
            WHERE (r.business_id, r.customer_id) IS DISTINCT FROM (y.business_id, y.customer_id)) THEN
        RAISE EXCEPTION 'a payment''s customer is not its payment request''s';
    END IF;
END
$$;

SELECT drop_reference(tab, name, parent) FROM (VALUES
    ('recurring_cycles', 'customer_ref', 'customers'),
    ('recurring_cycles', 'plan_ref', 'recurring_plans'),
    ('payments', 'customer_ref', 'customers'),
    ('payments', 'request_ref', 'payment_requests')
) AS r(tab, name, parent);

SELECT add_reference(tab, name, parent, columns, keys) FROM (VALUES
    ('recurring_cycles', 'plan_ref', 'recurring_plans', ARRAY['business_id', 'customer_id', 'plan_id'],
        ARRAY['business_id', 'customer_id', 'id']),
    ('payments', 'request_ref', 'payment_requests', ARRAY['business_id', 'customer_id', 'payment_request_id'],
        ARRAY['business_id', 'customer_id', 'id'])
) AS r(tab, name, parent, columns, keys);

CREATE OR REPLACE FUNCTION refuse_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'update on table "%": a row''s key (id, business_id, and for plans and payment requests customer_id) never changes: other rows reference it', TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, CONSTRAINT = TG_NAME;
END
$$;

DROP TRIGGER recurring_plans_key_fixed ON recurring_plans;
CREATE TRIGGER recurring_plans_key_fixed BEFORE UPDATE OF id, business_id, customer_id ON recurring_plans FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.business_id IS DISTINCT FROM NEW.business_id
        OR OLD.customer_id IS DISTINCT FROM NEW.customer_id) EXECUTE FUNCTION refuse_key_change();
DROP TRIGGER payment_requests_key_fixed ON payment_requests;
CREATE TRIGGER payment_requests_key_fixed BEFORE UPDATE OF id, business_id, customer_id ON payment_requests FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.business_id IS DISTINCT FROM NEW.business_id
        OR OLD.customer_id IS DISTINCT FROM NEW.customer_id) EXECUTE FUNCTION refuse_key_change();
