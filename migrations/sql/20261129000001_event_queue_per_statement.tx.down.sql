DROP TRIGGER events_webhook_queue ON events;
DROP FUNCTION webhook_queue_events();

CREATE FUNCTION webhook_queue_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_event_queue (event_id, business_id) VALUES (NEW.id, NEW.business_id);
    PERFORM pg_notify('billing_wake', 'webhooks');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_webhook_queue AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION webhook_queue_event();
