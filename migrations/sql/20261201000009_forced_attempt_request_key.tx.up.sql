-- A forced attempt remembers the Idempotency-Key of the force_attempt
-- request that opened it, so that the request repeated with that key
-- (after its first run was cut short, or to read its outcome) finds the
-- attempt and answers with the cycle instead of refusing it, or making
-- another attempt (docs/engine.md, "force_attempt"). At most one attempt
-- of a cycle per key. Attempts opened by the engine have none, so the
-- partial index costs them nothing, and recording an attempt's outcome
-- still changes no indexed column (HOT).
ALTER TABLE cycle_attempts ADD COLUMN request_key text COLLATE "C"
    CHECK (request_key IS NULL OR (type = 'FORCED' AND length(request_key) BETWEEN 1 AND 100));
CREATE UNIQUE INDEX cycle_attempts_request_key ON cycle_attempts (cycle_id, request_key) WHERE request_key IS NOT NULL;
