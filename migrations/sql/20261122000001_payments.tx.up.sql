-- Payments (SPEC §4.2, §6): provider settings per business, payment
-- requests, payment tokens, payments, the callbacks providers send, and
-- the sandbox provider's own records.

-- Which provider each business uses and its credentials. Secrets are never
-- returned by the API. xendit_callback_token_hash (SHA-256) finds the
-- business a Xendit callback belongs to.
CREATE TABLE provider_settings (
    business_id                  text COLLATE "C" PRIMARY KEY REFERENCES businesses (id),
    provider                     text NOT NULL CHECK (provider IN ('sandbox', 'xendit', 'wooshpay')),
    xendit_secret_key            text,
    xendit_callback_token        text,
    xendit_callback_token_hash   bytea UNIQUE,
    wooshpay_secret_key          text,
    wooshpay_webhook_secret      text,
    wooshpay_webhook_endpoint_id text COLLATE "C",
    created                      timestamptz NOT NULL,
    updated                      timestamptz NOT NULL,
    CHECK (provider <> 'xendit' OR (xendit_secret_key IS NOT NULL AND xendit_callback_token IS NOT NULL)),
    CHECK (provider <> 'wooshpay' OR (wooshpay_secret_key IS NOT NULL AND wooshpay_webhook_secret IS NOT NULL)),
    CHECK ((xendit_callback_token IS NULL) = (xendit_callback_token_hash IS NULL))
);

-- Payment requests (Xendit v3 shape). status SENDING is internal: the
-- request is recorded and its provider idempotency key committed, but the
-- provider's answer is not (the API shows it as PENDING).
CREATE TABLE payment_requests (
    id                     text COLLATE "C" PRIMARY KEY,
    business_id            text COLLATE "C" NOT NULL REFERENCES businesses (id),
    customer_id            text COLLATE "C" NOT NULL,
    type                   text COLLATE "C" NOT NULL CHECK (type IN ('PAY', 'PAY_AND_SAVE')),
    reference_id           text COLLATE "C" NOT NULL CHECK (length(reference_id) BETWEEN 1 AND 255),
    country                text NOT NULL,
    currency               text NOT NULL,
    request_amount         numeric NOT NULL CHECK (request_amount > 0),
    capture_method         text NOT NULL CHECK (capture_method = 'AUTOMATIC'),
    channel_code           text NOT NULL,
    channel_properties     jsonb,
    description            text,
    metadata               jsonb,
    payment_token_id       text COLLATE "C",
    status                 text NOT NULL CHECK (status IN ('SENDING', 'REQUIRES_ACTION', 'PENDING', 'SUCCEEDED', 'FAILED', 'CANCELED', 'EXPIRED')),
    failure_code           text,
    actions                jsonb NOT NULL DEFAULT '[]',
    latest_payment_id      text COLLATE "C",
    payment_link           boolean NOT NULL DEFAULT false,
    provider               text NOT NULL CHECK (provider IN ('sandbox', 'xendit', 'wooshpay')),
    provider_key           text COLLATE "C" NOT NULL CHECK (length(provider_key) BETWEEN 1 AND 255),
    provider_ref           text,
    idempotency_key        text COLLATE "C",
    request_hash           bytea,
    idempotency_expires_at timestamptz,
    next_check_at          timestamptz,
    checks                 integer NOT NULL DEFAULT 0,
    created                timestamptz NOT NULL,
    updated                timestamptz NOT NULL,
    UNIQUE (business_id, id),
    UNIQUE (business_id, provider_key),
    UNIQUE (business_id, idempotency_key),
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id),
    CHECK ((idempotency_key IS NULL) = (idempotency_expires_at IS NULL))
);
CREATE INDEX payment_requests_next_check_at ON payment_requests (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX payment_requests_provider_ref ON payment_requests (business_id, provider, provider_ref) WHERE provider_ref IS NOT NULL;

-- Saved payment methods. The consent columns record who agreed (the
-- customer), when, for which channel, and through which payment request.
CREATE TABLE payment_tokens (
    id                         text COLLATE "C" PRIMARY KEY,
    business_id                text COLLATE "C" NOT NULL REFERENCES businesses (id),
    customer_id                text COLLATE "C" NOT NULL,
    reference_id               text COLLATE "C" NOT NULL,
    provider                   text NOT NULL CHECK (provider IN ('sandbox', 'xendit', 'wooshpay')),
    provider_token_ref         text NOT NULL,
    country                    text NOT NULL,
    currency                   text NOT NULL,
    channel_code               text NOT NULL,
    status                     text NOT NULL CHECK (status IN ('REQUIRES_ACTION', 'PENDING', 'ACTIVE', 'FAILED', 'EXPIRED', 'CANCELED')),
    description                text,
    metadata                   jsonb,
    consented_at               timestamptz NOT NULL,
    consent_channel_code       text NOT NULL,
    consent_payment_request_id text COLLATE "C" NOT NULL,
    created                    timestamptz NOT NULL,
    updated                    timestamptz NOT NULL,
    UNIQUE (business_id, id),
    UNIQUE (business_id, provider, provider_token_ref),
    UNIQUE (business_id, consent_payment_request_id),
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id),
    FOREIGN KEY (business_id, consent_payment_request_id) REFERENCES payment_requests (business_id, id)
);
CREATE INDEX payment_tokens_customer ON payment_tokens (business_id, customer_id);

ALTER TABLE payment_requests ADD CONSTRAINT payment_requests_payment_token_fkey
    FOREIGN KEY (business_id, payment_token_id) REFERENCES payment_tokens (business_id, id);

-- Payments: the outcome of a payment request at the provider, one per request.
CREATE TABLE payments (
    id                   text COLLATE "C" PRIMARY KEY,
    business_id          text COLLATE "C" NOT NULL REFERENCES businesses (id),
    payment_request_id   text COLLATE "C" NOT NULL UNIQUE,
    customer_id          text COLLATE "C" NOT NULL,
    payment_token_id     text COLLATE "C",
    status               text NOT NULL CHECK (status IN ('SUCCEEDED', 'FAILED')),
    failure_code         text,
    currency             text NOT NULL,
    amount               numeric NOT NULL CHECK (amount > 0),
    channel_code         text NOT NULL,
    provider_payment_ref text,
    capture_id           text COLLATE "C",
    captured_at          timestamptz,
    created              timestamptz NOT NULL,
    updated              timestamptz NOT NULL,
    UNIQUE (business_id, id),
    FOREIGN KEY (business_id, payment_request_id) REFERENCES payment_requests (business_id, id),
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id),
    FOREIGN KEY (business_id, payment_token_id) REFERENCES payment_tokens (business_id, id),
    CHECK ((status = 'SUCCEEDED') = (captured_at IS NOT NULL))
);
CREATE INDEX payments_business_id ON payments (business_id);

-- Every verified callback, raw, once per distinct callback (dedupe_key):
-- a repeat only counts times_received. outcome says what it did.
CREATE TABLE provider_callbacks (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_id        text COLLATE "C" NOT NULL REFERENCES businesses (id),
    provider           text NOT NULL CHECK (provider IN ('sandbox', 'xendit', 'wooshpay')),
    dedupe_key         text COLLATE "C" NOT NULL,
    event_type         text COLLATE "C",
    body               bytea NOT NULL,
    outcome            text NOT NULL CHECK (outcome IN ('PROCESSED', 'UNMATCHED', 'IGNORED', 'UNPARSEABLE')),
    payment_request_id text COLLATE "C",
    received_at        timestamptz NOT NULL,
    last_received_at   timestamptz NOT NULL,
    times_received     integer NOT NULL DEFAULT 1,
    UNIQUE (business_id, provider, dedupe_key)
);
CREATE INDEX provider_callbacks_unmatched ON provider_callbacks (business_id, received_at) WHERE outcome = 'UNMATCHED';

-- The sandbox provider's own books: what a real provider would keep on its
-- side. Each request is idempotent by (business_id, idempotency_key).
CREATE TABLE sandbox_tokens (
    id           text COLLATE "C" PRIMARY KEY,
    business_id  text COLLATE "C" NOT NULL REFERENCES businesses (id),
    channel_code text NOT NULL,
    currency     text NOT NULL,
    behavior     text NOT NULL DEFAULT '',
    timeout_used boolean NOT NULL DEFAULT false,
    canceled     boolean NOT NULL DEFAULT false,
    created      timestamptz NOT NULL
);

CREATE TABLE sandbox_payments (
    id              text COLLATE "C" PRIMARY KEY,
    business_id     text COLLATE "C" NOT NULL REFERENCES businesses (id),
    idempotency_key text COLLATE "C" NOT NULL,
    kind            text COLLATE "C" NOT NULL CHECK (kind IN ('LINK', 'CHARGE', 'PAYMENT_LINK')),
    reference       text NOT NULL,
    request_hash    bytea NOT NULL,
    currency        text NOT NULL,
    amount          numeric NOT NULL,
    channel_code    text NOT NULL,
    behavior        text NOT NULL DEFAULT '',
    token_id        text COLLATE "C" REFERENCES sandbox_tokens (id),
    payment_ref     text,
    outcome         text CHECK (outcome IN ('SUCCEEDED', 'FAILED')),
    failure_code    text,
    canceled        boolean NOT NULL DEFAULT false,
    settles_at      timestamptz,
    expires_at      timestamptz,
    created         timestamptz NOT NULL,
    UNIQUE (business_id, idempotency_key)
);

-- Callbacks the sandbox will send, due at a time of the business's clock.
CREATE TABLE sandbox_callbacks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_id  text COLLATE "C" NOT NULL REFERENCES businesses (id),
    payment_id   text COLLATE "C" NOT NULL REFERENCES sandbox_payments (id),
    event        text COLLATE "C" NOT NULL,
    due_at       timestamptz NOT NULL,
    body         bytea NOT NULL,
    delivered_at timestamptz,
    created      timestamptz NOT NULL
);
CREATE INDEX sandbox_callbacks_due ON sandbox_callbacks (business_id, due_at, id) WHERE delivered_at IS NULL;
