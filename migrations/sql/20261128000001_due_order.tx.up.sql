-- The engine takes due cycles in batches, earliest first and by id among
-- cycles due at the same instant (engine.Service.LockDue: ORDER BY
-- next_action_at, id LIMIT n FOR UPDATE SKIP LOCKED). With the index on
-- next_action_at alone, PostgreSQL sorts every cycle due at that instant
-- for each batch: 100,000 cycles due at one moment meant sorting the rest
-- of them 200 times. With id in the index, a batch reads its rows in order
-- and stops at the limit. The schedule's and the dispatcher's range scans
-- on next_action_at use it as they used the old one.
CREATE INDEX recurring_cycles_next_action ON recurring_cycles (next_action_at, id) WHERE next_action IS NOT NULL;
DROP INDEX recurring_cycles_next_action_at;
