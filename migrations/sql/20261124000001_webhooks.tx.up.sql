-- Outbound webhooks (SPEC §4.9) and customer notifications (SPEC §4.10).
-- Times named *_at or created/updated are by the business's clock (the
-- sandbox clock of a sandbox business) unless the comment says otherwise.

-- Per-business webhook settings: the callback token sent as
-- x-callback-token with every delivery (as Xendit does). Created with the
-- business's first endpoint, or when it is first asked for.
CREATE TABLE webhook_settings (
    business_id    text COLLATE "C" PRIMARY KEY REFERENCES businesses (id),
    callback_token text NOT NULL,
    created        timestamptz NOT NULL,
    updated        timestamptz NOT NULL
);

-- Webhook endpoints. secret signs every delivery (webhook-signature); it is
-- shown once, when the endpoint is created. enabled_events is {*} or a set
-- of event types. An endpoint that failed for 3 days is DISABLED with
-- disabled_reason FAILING; failing_since is the first failed attempt since
-- its last success. Deleted endpoints are kept (deleted_at) so that the
-- delivery log still names them; the API never shows them.
CREATE TABLE webhook_endpoints (
    id              text COLLATE "C" PRIMARY KEY,
    business_id     text COLLATE "C" NOT NULL REFERENCES businesses (id),
    url             text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description     text,
    enabled_events  text[] NOT NULL CHECK (cardinality(enabled_events) > 0),
    secret          text NOT NULL,
    status          text NOT NULL CHECK (status IN ('ENABLED', 'DISABLED')),
    disabled_reason text CHECK (disabled_reason IN ('REQUESTED', 'FAILING')),
    disabled_at     timestamptz,
    failing_since   timestamptz,
    -- The lease of the job delivering to this endpoint (system clock): at
    -- most one process sends to an endpoint at a time.
    lease_token     text,
    lease_until     timestamptz,
    created         timestamptz NOT NULL,
    updated         timestamptz NOT NULL,
    deleted_at      timestamptz,
    UNIQUE (business_id, id),
    CHECK ((status = 'DISABLED') = (disabled_reason IS NOT NULL)),
    CHECK ((status = 'DISABLED') = (disabled_at IS NOT NULL))
);
CREATE INDEX webhook_endpoints_business ON webhook_endpoints (business_id, id) WHERE deleted_at IS NULL;

-- Events not yet turned into deliveries. Every row inserted into events is
-- queued here by a trigger, in the inserting transaction, so that no event
-- is ever missed whatever order transactions commit in; the dispatcher
-- turns each into one delivery per subscribed endpoint and deletes it.
CREATE TABLE webhook_event_queue (
    event_id    text COLLATE "C" PRIMARY KEY REFERENCES events (id),
    business_id text COLLATE "C" NOT NULL
);

CREATE FUNCTION webhook_queue_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_event_queue (event_id, business_id) VALUES (NEW.id, NEW.business_id);
    -- Wakes the engine's dispatcher when the transaction commits.
    PERFORM pg_notify('billing_wake', 'webhooks');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_webhook_queue AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION webhook_queue_event();

-- One delivery of one event to one endpoint. An automatic delivery is
-- unique per (event, endpoint); a redelivery asked through the API is
-- another row. status: PENDING (due at next_attempt_at), SUCCEEDED (a 2xx
-- answer), FAILED (3 days of failed attempts), CANCELLED (the endpoint was
-- disabled or deleted first).
CREATE TABLE webhook_deliveries (
    id                  text COLLATE "C" PRIMARY KEY,
    business_id         text COLLATE "C" NOT NULL,
    event_id            text COLLATE "C" NOT NULL REFERENCES events (id),
    webhook_endpoint_id text COLLATE "C" NOT NULL,
    redelivery          boolean NOT NULL,
    status              text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    attempt_count       integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz,
    created             timestamptz NOT NULL,
    updated             timestamptz NOT NULL,
    FOREIGN KEY (business_id, webhook_endpoint_id) REFERENCES webhook_endpoints (business_id, id),
    CHECK ((status = 'PENDING') = (next_attempt_at IS NOT NULL))
);
CREATE UNIQUE INDEX webhook_deliveries_automatic ON webhook_deliveries (event_id, webhook_endpoint_id) WHERE NOT redelivery;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (webhook_endpoint_id, next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_attempt_at) WHERE status = 'PENDING';

-- Every attempt of a delivery: the HTTP status (null when no answer came),
-- how long it took, the start of the answer, and the error when no answer
-- came. attempted_at is by the business's clock; latency_ms by the system
-- clock.
CREATE TABLE webhook_attempts (
    delivery_id      text COLLATE "C" NOT NULL REFERENCES webhook_deliveries (id),
    attempt_number   integer NOT NULL CHECK (attempt_number >= 1),
    business_id      text COLLATE "C" NOT NULL,
    url              text NOT NULL,
    attempted_at     timestamptz NOT NULL,
    status_code      integer,
    latency_ms       integer NOT NULL CHECK (latency_ms >= 0),
    response_excerpt text NOT NULL,
    error            text,
    succeeded        boolean NOT NULL,
    PRIMARY KEY (delivery_id, attempt_number)
);

-- Messages to the business's customers (SPEC §4.10). recipient is the
-- e-mail address or E.164 number used, null when the customer has none.
-- tries counts the sends tried; next_try_at is when the next is due
-- (QUEUED only); lease_until (system clock) keeps two processes from
-- sending one message at once.
CREATE TABLE notifications (
    id             text COLLATE "C" PRIMARY KEY,
    business_id    text COLLATE "C" NOT NULL REFERENCES businesses (id),
    customer_id    text COLLATE "C" NOT NULL,
    plan_id        text COLLATE "C",
    cycle_id       text COLLATE "C",
    kind           text COLLATE "C" NOT NULL CHECK (kind IN ('CYCLE_CREATED', 'CYCLE_SUCCEEDED', 'ATTEMPT_FAILED', 'CYCLE_FAILED', 'SERVICE_SUSPENDED', 'SERVICE_REINSTATED')),
    attempt_number integer,
    channel        text NOT NULL CHECK (channel IN ('EMAIL', 'WHATSAPP', 'SMS')),
    locale         text NOT NULL CHECK (locale IN ('en', 'id')),
    recipient      text,
    subject        text,
    body           text NOT NULL,
    status         text NOT NULL CHECK (status IN ('QUEUED', 'SENT', 'FAILED', 'SKIPPED_NO_CHANNEL')),
    status_reason  text,
    tries          integer NOT NULL DEFAULT 0,
    next_try_at    timestamptz,
    lease_until    timestamptz,
    created        timestamptz NOT NULL,
    updated        timestamptz NOT NULL,
    sent_at        timestamptz,
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id),
    CHECK ((status = 'QUEUED') = (next_try_at IS NOT NULL)),
    CHECK ((status = 'SENT') = (sent_at IS NOT NULL))
);
CREATE INDEX notifications_customer ON notifications (business_id, customer_id, id);
CREATE INDEX notifications_business ON notifications (business_id, id);
CREATE INDEX notifications_due ON notifications (next_try_at) WHERE status = 'QUEUED';
