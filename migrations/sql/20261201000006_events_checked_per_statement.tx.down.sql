CREATE OR REPLACE FUNCTION webhook_queue_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_event_queue (event_id, business_id)
    SELECT e.id, e.business_id FROM inserted_events AS e
    WHERE EXISTS (SELECT 1 FROM webhook_endpoints AS w
        WHERE w.business_id = e.business_id AND w.status = 'ENABLED' AND w.deleted_at IS NULL);
    IF FOUND THEN
        PERFORM pg_notify('billing_wake', 'webhooks');
    END IF;
    RETURN NULL;
END
$$;
ALTER TABLE events ADD CONSTRAINT events_business_id_fkey FOREIGN KEY (business_id) REFERENCES businesses (id);
ALTER TABLE events ALTER COLUMN data TYPE jsonb USING data::jsonb;
