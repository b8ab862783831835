-- Queues events for webhook dispatch once per INSERT statement instead of
-- once per row: the engine writes a batch's events with one statement, and
-- a row trigger ran a PL/pgSQL call, an INSERT and a pg_notify for each of
-- them. The transition table holds every row the statement inserted, so
-- every event is still queued in its inserting transaction.
DROP TRIGGER events_webhook_queue ON events;
DROP FUNCTION webhook_queue_event();

CREATE FUNCTION webhook_queue_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_event_queue (event_id, business_id) SELECT id, business_id FROM inserted_events;
    IF FOUND THEN
        -- Wakes the engine's dispatcher when the transaction commits.
        PERFORM pg_notify('billing_wake', 'webhooks');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_webhook_queue AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_queue_events();
