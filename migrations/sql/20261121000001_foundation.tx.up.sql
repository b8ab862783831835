-- Businesses: the tenants. A sandbox business has its own clock (sandbox_now),
-- which only moves when told; a live business uses the system clock.
CREATE TABLE businesses (
    id         text COLLATE "C" PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    mode        text NOT NULL CHECK (mode IN ('SANDBOX', 'LIVE')),
    sandbox_now timestamptz,
    created     timestamptz NOT NULL,
    CHECK ((mode = 'SANDBOX') = (sandbox_now IS NOT NULL))
);

-- API keys: only the SHA-256 of the key is stored (keys are 256-bit random
-- strings, so a fast hash is enough); key_hint is the visible start of the key.
CREATE TABLE api_keys (
    id         text COLLATE "C" PRIMARY KEY,
    business_id text COLLATE "C" NOT NULL REFERENCES businesses (id),
    key_hash    bytea NOT NULL UNIQUE,
    key_hint    text NOT NULL,
    created     timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_business_id ON api_keys (business_id);

-- Idempotency records: the stored response of a successful POST/PATCH sent
-- with an idempotency-key header, replayed for 24 hours (real time).
-- status_code 0 means the request is still running; locked_until is then the
-- end of its lease (only for handlers that commit in steps).
CREATE TABLE idempotency_keys (
    business_id  text COLLATE "C" NOT NULL REFERENCES businesses (id),
    key          text COLLATE "C" NOT NULL CHECK (length(key) BETWEEN 1 AND 100),
    request_hash  bytea NOT NULL,
    method        text NOT NULL,
    path          text NOT NULL,
    status_code   integer NOT NULL,
    content_type  text NOT NULL,
    response_body bytea NOT NULL,
    created       timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    locked_until  timestamptz,
    PRIMARY KEY (business_id, key)
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- The event outbox: every domain event, written in the transaction of the
-- change it describes (SPEC §4.9 envelope). Delivery reads from here.
CREATE TABLE events (
    id         text COLLATE "C" PRIMARY KEY,
    business_id text COLLATE "C" NOT NULL REFERENCES businesses (id),
    type       text COLLATE "C" NOT NULL,
    api_version text NOT NULL,
    created     timestamptz NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX events_business_type_created ON events (business_id, type, created);
CREATE INDEX events_business_created ON events (business_id, created, id);

-- Customers (Xendit shape) plus the engine's service status.
CREATE TABLE customers (
    id                   text COLLATE "C" PRIMARY KEY,
    business_id          text COLLATE "C" NOT NULL REFERENCES businesses (id),
    reference_id         text COLLATE "C" NOT NULL CHECK (length(reference_id) BETWEEN 1 AND 255),
    type                 text COLLATE "C" NOT NULL CHECK (type IN ('INDIVIDUAL', 'BUSINESS')),
    individual_detail     jsonb,
    business_detail       jsonb,
    email                 text,
    mobile_number         text,
    phone_number          text,
    description           text,
    addresses             jsonb NOT NULL DEFAULT '[]',
    identity_accounts     jsonb NOT NULL DEFAULT '[]',
    kyc_documents         jsonb NOT NULL DEFAULT '[]',
    metadata              jsonb,
    service_status        text NOT NULL DEFAULT 'ACTIVE' CHECK (service_status IN ('ACTIVE', 'SUSPENDED')),
    service_status_reason text,
    service_status_since  timestamptz,
    created               timestamptz NOT NULL,
    updated               timestamptz NOT NULL,
    UNIQUE (business_id, reference_id),
    -- Lets other tables reference (business_id, customer_id), so that a row can
    -- never point at another business's customer.
    UNIQUE (business_id, id)
);
