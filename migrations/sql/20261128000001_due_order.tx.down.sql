CREATE INDEX recurring_cycles_next_action_at ON recurring_cycles (next_action_at) WHERE next_action IS NOT NULL;
DROP INDEX recurring_cycles_next_action;
