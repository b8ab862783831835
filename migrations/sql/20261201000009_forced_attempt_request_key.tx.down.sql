DROP INDEX cycle_attempts_request_key;
ALTER TABLE cycle_attempts DROP COLUMN request_key;
