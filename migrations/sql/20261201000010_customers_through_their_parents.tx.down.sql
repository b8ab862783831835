DROP TRIGGER payment_requests_key_fixed ON payment_requests;
CREATE TRIGGER payment_requests_key_fixed BEFORE UPDATE OF id, business_id ON payment_requests FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.business_id IS DISTINCT FROM NEW.business_id) EXECUTE FUNCTION refuse_key_change();
DROP TRIGGER recurring_plans_key_fixed ON recurring_plans;
CREATE TRIGGER recurring_plans_key_fixed BEFORE UPDATE OF id, business_id ON recurring_plans FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.business_id IS DISTINCT FROM NEW.business_id) EXECUTE FUNCTION refuse_key_change();

CREATE OR REPLACE FUNCTION refuse_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'update on table "%": a row''s key (id, business_id) never changes: other rows reference it', TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, CONSTRAINT = TG_NAME;
END
$$;

SELECT drop_reference(tab, name, parent) FROM (VALUES
    ('recurring_cycles', 'plan_ref', 'recurring_plans'),
    ('payments', 'request_ref', 'payment_requests')
) AS r(tab, name, parent);

SELECT add_reference(tab, name, parent, columns, keys) FROM (VALUES
    ('recurring_cycles', 'customer_ref', 'customers', ARRAY['business_id', 'customer_id'], ARRAY['business_id', 'id']),
    ('recurring_cycles', 'plan_ref', 'recurring_plans', ARRAY['business_id', 'plan_id'], ARRAY['business_id', 'id']),
    ('payments', 'customer_ref', 'customers', ARRAY['business_id', 'customer_id'], ARRAY['business_id', 'id']),
    ('payments', 'request_ref', 'payment_requests', ARRAY['business_id', 'payment_request_id'], ARRAY['business_id', 'id'])
) AS r(tab, name, parent, columns, keys);
