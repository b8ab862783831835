-- Events are the largest share of what charging writes: four a charge.
-- Two per-row costs of theirs go:
--
-- 1. `data` becomes json instead of jsonb. The engine encodes every
--    document itself and only ever reads a document whole (GET /events,
--    webhook bodies), so jsonb's binary form bought nothing, and building
--    it was about 5% of PostgreSQL's CPU in a charging run. json still
--    rejects invalid text, and it keeps the document as the engine wrote
--    it: its keys in the engine's order, as sent to webhook endpoints.
--
-- 2. The foreign key to businesses, a look-up and a FOR KEY SHARE lock of
--    the business row for every event, becomes one check per statement in
--    the statement trigger the events already have: it locks each business
--    of the statement's events FOR KEY SHARE, in id order, and fails with
--    foreign_key_violation when one does not exist. The lock is the same
--    one the key took, so creating a webhook endpoint (which locks the
--    business FOR UPDATE) still waits for the event transactions under
--    way, and the queue insert below, a new statement with a new snapshot,
--    still sees an endpoint committed while this one waited. Businesses
--    are never deleted, which is the one thing the key also guarded.
--    Docs: docs/webhooks.md, "How it works".
ALTER TABLE events ALTER COLUMN data TYPE json USING data::json;
ALTER TABLE events DROP CONSTRAINT events_business_id_fkey;

CREATE OR REPLACE FUNCTION webhook_queue_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    locked bigint;
BEGIN
    SELECT count(DISTINCT business_id) INTO wanted FROM inserted_events;
    IF wanted = 0 THEN
        RETURN NULL;
    END IF;
    WITH l AS (
        SELECT b.id FROM businesses AS b
        WHERE b.id IN (SELECT business_id FROM inserted_events)
        ORDER BY b.id FOR KEY SHARE)
    SELECT count(*) INTO locked FROM l;
    IF locked <> wanted THEN
        RAISE EXCEPTION 'insert into events: an event''s business_id is not a business'
            USING ERRCODE = 'foreign_key_violation', TABLE = 'events', COLUMN = 'business_id';
    END IF;

    INSERT INTO webhook_event_queue (event_id, business_id)
    SELECT e.id, e.business_id FROM inserted_events AS e
    WHERE EXISTS (SELECT 1 FROM webhook_endpoints AS w
        WHERE w.business_id = e.business_id AND w.status = 'ENABLED' AND w.deleted_at IS NULL);
    IF FOUND THEN
        -- Wakes the engine's dispatcher when the transaction commits.
        PERFORM pg_notify('billing_wake', 'webhooks');
    END IF;
    RETURN NULL;
END
$$;
