CREATE OR REPLACE FUNCTION webhook_queue_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_event_queue (event_id, business_id) SELECT id, business_id FROM inserted_events;
    IF FOUND THEN
        PERFORM pg_notify('billing_wake', 'webhooks');
    END IF;
    RETURN NULL;
END
$$;
