-- The references that charging writes most, fourteen a charge, are checked
-- once per statement instead of once per row (docs/architecture.md,
-- "References"). A foreign key checks each inserted row with a query of
-- its own through SPI: a plan run, an index probe and a FOR KEY SHARE lock
-- of the referenced row; the checks were about 17% of PostgreSQL's CPU in
-- a profiled charging run. Checked per statement, the same probes and
-- locks took about 13%: the probes stay, the per-row query goes.
--
-- Each replaced key is three triggers (add_reference wires them) that
-- together do what its foreign key did:
--
-- 1. On the referencing table, AFTER INSERT FOR EACH STATEMENT with the
--    statement's new rows (check_reference): one query per statement
--    probes the referenced table's primary key once per distinct key,
--    compares the business on the row found, and locks the rows found FOR
--    KEY SHARE, in key order, as the key's checks did; a key that names no
--    row fails the statement with foreign_key_violation, naming the table,
--    the column(s) and the trigger. A row with a NULL among its columns is not checked (MATCH
--    SIMPLE, as the keys were).
-- 2. On the referencing table, BEFORE UPDATE OF its columns FOR EACH ROW
--    when one of them changes: the same check for the new value
--    (check_reference, row form). Updates that leave them alone, which is
--    every update the engine makes, cost nothing.
-- 3. On the referenced table, BEFORE DELETE FOR EACH ROW (keep_referenced):
--    a row still referenced is not deleted (foreign_key_violation). The
--    row's lock, taken before the trigger runs, waits for a transaction
--    that locked it FOR KEY SHARE to insert a reference, and the check then
--    sees that reference, so a delete and an insert racing each other
--    cannot leave a reference dangling. The referenced tables' keys
--    themselves are never changed (refuse_key_change on each).
--
-- The probes and locks are the ones the keys made, so the guarantees are
-- the same; what goes is running a separate query for every row.
-- check_reference runs with sequential scans off: the tables it probes may
-- have no statistics yet (a burst of charges outruns autovacuum), and a
-- probe must be an index look-up whatever the planner believes.

CREATE FUNCTION check_reference() RETURNS trigger LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_bitmapscan = off AS $$
-- TG_ARGV: the referenced table, then pairs of (referencing column,
-- referenced column), the last pair naming the referenced table's
-- primary key (id): each key is found by a probe of that index alone,
-- whatever other index the planner might think cheaper, and its other
-- columns (the business) compared on the row found.
DECLARE
    last int := TG_NARGS - 2;
    keys text := '';
    present text := '';
    found_columns text := 'true AS hit';
    same text := 'true';
    columns text := '';
    sorted text := '';
    query text;
    wanted bigint;
    found bigint;
BEGIN
    FOR i IN 1 .. last BY 2 LOOP
        IF i > 1 THEN
            keys := keys || ', ';
            present := present || ' AND ';
            columns := columns || ', ';
            sorted := sorted || ', ';
        END IF;
        keys := keys || format('n.%I AS k%s', TG_ARGV[i], i);
        present := present || format('n.%I IS NOT NULL', TG_ARGV[i]);
        columns := columns || TG_ARGV[i];
        sorted := sorted || format('k%s', i);
        IF i < last THEN
            found_columns := found_columns || format(', p.%I AS c%s', TG_ARGV[i + 1], i);
            same := same || format(' AND l.c%s = k.k%s', i, i);
        END IF;
    END LOOP;
    query := format('WITH k AS MATERIALIZED (SELECT DISTINCT %s FROM %s AS n WHERE %s ORDER BY %s)
        SELECT (SELECT count(*) FROM k),
            (SELECT count(*) FROM k, LATERAL (SELECT %s FROM %I AS p WHERE p.%I = k.k%s FOR KEY SHARE OF p) AS l WHERE %s)',
        keys, CASE WHEN TG_LEVEL = 'STATEMENT' THEN 'new_rows' ELSE '(SELECT ($1).*)' END, present, sorted,
        found_columns, TG_ARGV[0], TG_ARGV[last + 1], last, same);
    IF TG_LEVEL = 'STATEMENT' THEN
        EXECUTE query INTO wanted, found;
    ELSE
        EXECUTE query INTO wanted, found USING NEW;
    END IF;
    IF found < wanted THEN
        RAISE EXCEPTION 'insert or update on table "%" violates reference "%": (%) names no row of %',
                TG_TABLE_NAME, TG_NAME, columns, TG_ARGV[0]
            USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, COLUMN = columns, CONSTRAINT = TG_NAME;
    END IF;
    IF TG_LEVEL = 'STATEMENT' THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION keep_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
-- TG_ARGV: the referencing table, then pairs of (referenced column,
-- referencing column).
DECLARE
    matches text := '';
    referenced boolean;
BEGIN
    FOR i IN 1 .. TG_NARGS - 1 BY 2 LOOP
        IF i > 1 THEN
            matches := matches || ' AND ';
        END IF;
        matches := matches || format('c.%I = ($1).%I', TG_ARGV[i + 1], TG_ARGV[i]);
    END LOOP;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I AS c WHERE %s)', TG_ARGV[0], matches) INTO referenced USING OLD;
    IF referenced THEN
        RAISE EXCEPTION 'delete on table "%" violates reference "%": the row is still referenced from %',
                TG_TABLE_NAME, TG_NAME, TG_ARGV[0]
            USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, CONSTRAINT = TG_NAME;
    END IF;
    RETURN OLD;
END
$$;

CREATE FUNCTION refuse_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'update on table "%": a row''s key (id, business_id) never changes: other rows reference it', TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, CONSTRAINT = TG_NAME;
END
$$;

-- add_reference wires the three triggers of one reference: columns of
-- table name a row of parent by its keys (the last being its primary key,
-- id). They are named <table>_<name>, <table>_<name>_update and
-- <table>_<name>_delete (the last on parent). drop_reference removes them.
CREATE FUNCTION add_reference(tab text, name text, parent text, columns text[], keys text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    check_args text := quote_literal(parent);
    keep_args text := quote_literal(tab);
    changed text := '';
BEGIN
    FOR i IN 1 .. array_length(columns, 1) LOOP
        check_args := check_args || ', ' || quote_literal(columns[i]) || ', ' || quote_literal(keys[i]);
        keep_args := keep_args || ', ' || quote_literal(keys[i]) || ', ' || quote_literal(columns[i]);
        changed := changed || CASE WHEN i > 1 THEN ' OR ' ELSE '' END || format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', columns[i]);
    END LOOP;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION check_reference(%s)', tab || '_' || name, tab, check_args);
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OF %s ON %I FOR EACH ROW WHEN (%s)
        EXECUTE FUNCTION check_reference(%s)', tab || '_' || name || '_update', array_to_string(columns, ', '), tab, changed, check_args);
    EXECUTE format('CREATE TRIGGER %I BEFORE DELETE ON %I FOR EACH ROW EXECUTE FUNCTION keep_referenced(%s)',
        tab || '_' || name || '_delete', parent, keep_args);
END
$$;

CREATE FUNCTION drop_reference(tab text, name text, parent text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER %I ON %I', tab || '_' || name, tab);
    EXECUTE format('DROP TRIGGER %I ON %I', tab || '_' || name || '_update', tab);
    EXECUTE format('DROP TRIGGER %I ON %I', tab || '_' || name || '_delete', parent);
END
$$;

-- The keys replaced.
ALTER TABLE cycle_attempts DROP CONSTRAINT cycle_attempts_business_id_cycle_id_fkey;
ALTER TABLE payment_requests DROP CONSTRAINT payment_requests_payment_token_fkey;
ALTER TABLE payment_requests DROP CONSTRAINT payment_requests_business_id_customer_id_fkey;
ALTER TABLE payments DROP CONSTRAINT payments_business_id_payment_request_id_fkey;
ALTER TABLE payments DROP CONSTRAINT payments_business_id_customer_id_fkey;
ALTER TABLE payments DROP CONSTRAINT payments_business_id_payment_token_id_fkey;
ALTER TABLE provider_callbacks DROP CONSTRAINT provider_callbacks_business_id_fkey;
ALTER TABLE sandbox_payments DROP CONSTRAINT sandbox_payments_token_id_fkey;
ALTER TABLE sandbox_payments DROP CONSTRAINT sandbox_payments_business_id_fkey;
ALTER TABLE sandbox_callbacks DROP CONSTRAINT sandbox_callbacks_payment_id_fkey;
ALTER TABLE sandbox_callbacks DROP CONSTRAINT sandbox_callbacks_business_id_fkey;
ALTER TABLE recurring_cycles DROP CONSTRAINT recurring_cycles_business_id_customer_id_fkey;
ALTER TABLE recurring_cycles DROP CONSTRAINT recurring_cycles_business_id_plan_id_fkey;
ALTER TABLE invoice_audit DROP CONSTRAINT invoice_audit_invoice_id_fkey;

-- Their triggers.
SELECT add_reference(tab, name, parent, columns, keys) FROM (VALUES
    ('cycle_attempts', 'cycle_ref', 'recurring_cycles', ARRAY['business_id', 'cycle_id'], ARRAY['business_id', 'id']),
    ('payment_requests', 'token_ref', 'payment_tokens', ARRAY['business_id', 'payment_token_id'], ARRAY['business_id', 'id']),
    ('payment_requests', 'customer_ref', 'customers', ARRAY['business_id', 'customer_id'], ARRAY['business_id', 'id']),
    ('payments', 'request_ref', 'payment_requests', ARRAY['business_id', 'payment_request_id'], ARRAY['business_id', 'id']),
    ('payments', 'customer_ref', 'customers', ARRAY['business_id', 'customer_id'], ARRAY['business_id', 'id']),
    ('payments', 'token_ref', 'payment_tokens', ARRAY['business_id', 'payment_token_id'], ARRAY['business_id', 'id']),
    ('provider_callbacks', 'business_ref', 'businesses', ARRAY['business_id'], ARRAY['id']),
    ('sandbox_payments', 'token_ref', 'sandbox_tokens', ARRAY['token_id'], ARRAY['id']),
    ('sandbox_payments', 'business_ref', 'businesses', ARRAY['business_id'], ARRAY['id']),
    ('sandbox_callbacks', 'payment_ref', 'sandbox_payments', ARRAY['payment_id'], ARRAY['id']),
    ('sandbox_callbacks', 'business_ref', 'businesses', ARRAY['business_id'], ARRAY['id']),
    ('recurring_cycles', 'customer_ref', 'customers', ARRAY['business_id', 'customer_id'], ARRAY['business_id', 'id']),
    ('recurring_cycles', 'plan_ref', 'recurring_plans', ARRAY['business_id', 'plan_id'], ARRAY['business_id', 'id']),
    ('invoice_audit', 'invoice_ref', 'invoices', ARRAY['invoice_id'], ARRAY['id'])
) AS r(tab, name, parent, columns, keys);

-- The referenced tables' keys never change.
CREATE TRIGGER businesses_key_fixed BEFORE UPDATE OF id ON businesses FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_key_change();
CREATE TRIGGER customers_key_fixed BEFORE UPDATE OF id, business_id ON customers FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.business_id IS DISTINCT FROM NEW.business_id) EXECUTE FUNCTION refuse_key_change();
CREATE TRIGGER payment_tokens_key_fixed BEFORE UPDATE OF id, business_id ON payment_tokens FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.business_id IS DISTINCT FROM NEW.business_id) EXECUTE FUNCTION refuse_key_change();
CREATE TRIGGER payment_requests_key_fixed BEFORE UPDATE OF id, business_id ON payment_requests FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.business_id IS DISTINCT FROM NEW.business_id) EXECUTE FUNCTION refuse_key_change();
CREATE TRIGGER recurring_plans_key_fixed BEFORE UPDATE OF id, business_id ON recurring_plans FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.business_id IS DISTINCT FROM NEW.business_id) EXECUTE FUNCTION refuse_key_change();
CREATE TRIGGER recurring_cycles_key_fixed BEFORE UPDATE OF id, business_id ON recurring_cycles FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.business_id IS DISTINCT FROM NEW.business_id) EXECUTE FUNCTION refuse_key_change();
CREATE TRIGGER invoices_key_fixed BEFORE UPDATE OF id ON invoices FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_key_change();
CREATE TRIGGER sandbox_tokens_key_fixed BEFORE UPDATE OF id ON sandbox_tokens FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_key_change();
CREATE TRIGGER sandbox_payments_key_fixed BEFORE UPDATE OF id ON sandbox_payments FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_key_change();
