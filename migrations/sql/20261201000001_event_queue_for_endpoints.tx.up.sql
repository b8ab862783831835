-- Queues an event for webhook dispatch only when its business has an
-- ENABLED endpoint: a business without one (most sandboxes, a utility that
-- reads GET /events instead) no longer writes, reads and deletes a queue row
-- per event. Dispatch still decides which endpoints an event goes to.
--
-- An endpoint being created or enabled locks its business's row FOR UPDATE
-- and takes its creation time after that (internal/webhooks, endpoint.go).
-- Every event insert locks the same row FOR KEY SHARE (its foreign key), so
-- the endpoint's transaction waits for the event transactions under way,
-- and an event inserted later waits for the endpoint's commit, after which
-- this trigger's statement sees the endpoint. Docs: docs/webhooks.md.
CREATE OR REPLACE FUNCTION webhook_queue_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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
