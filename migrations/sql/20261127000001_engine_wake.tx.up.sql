-- Wakes the engine when a live business's cycle falls due now or within a
-- minute (an approval, a release, a cycle created or moved to a time that
-- has come): NOTIFY 'engine:<business_id>' on billing_wake, delivered when
-- the transaction commits, turns into an engine_due job at once instead of
-- at the next schedule run (up to 30 seconds later). Cycles due later are
-- the schedule's; sandbox businesses run when their clock is advanced.
CREATE FUNCTION engine_wake_cycle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM businesses WHERE id = NEW.business_id AND sandbox_now IS NULL) THEN
        PERFORM pg_notify('billing_wake', 'engine:' || NEW.business_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER recurring_cycles_engine_wake AFTER INSERT OR UPDATE OF next_action, next_action_at ON recurring_cycles
    FOR EACH ROW WHEN (NEW.next_action IS NOT NULL AND NEW.next_action_at <= now() + interval '1 minute')
    EXECUTE FUNCTION engine_wake_cycle();
