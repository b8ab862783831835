DROP TABLE customers;
DROP TABLE events;
DROP TABLE idempotency_keys;
DROP TABLE api_keys;
DROP TABLE businesses;
