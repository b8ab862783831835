DROP TRIGGER recurring_cycles_engine_wake ON recurring_cycles;
DROP FUNCTION engine_wake_cycle();
