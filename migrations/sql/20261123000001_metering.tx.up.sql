-- Meters: what a business measures. code is immutable and unique per business;
-- value_property is set only for UNIQUE_COUNT meters.
CREATE TABLE meters (
    id            text COLLATE "C" PRIMARY KEY,
    business_id   text COLLATE "C" NOT NULL REFERENCES businesses (id),
    code          text COLLATE "C" NOT NULL,
    name           text NOT NULL,
    unit           text NOT NULL,
    aggregation    text NOT NULL CHECK (aggregation IN ('SUM', 'COUNT', 'MAX', 'LATEST', 'UNIQUE_COUNT')),
    value_property text,
    created        timestamptz NOT NULL,
    updated        timestamptz NOT NULL,
    UNIQUE (business_id, code),
    CHECK ((aggregation = 'UNIQUE_COUNT') = (value_property IS NOT NULL))
);

-- Usage events: append-only, partitioned by month of the usage timestamp.
-- Partitions (usage_events_YYYY_MM) are created ahead by a River job and on
-- demand for older months. billed_cycle_id is the only column ever updated:
-- set once, by the transaction that writes the invoice billing the event.
CREATE TABLE usage_events (
    business_id    text COLLATE "C" NOT NULL,
    id             text COLLATE "C" NOT NULL,
    event_id       text COLLATE "C" NOT NULL,
    customer_id    text COLLATE "C" NOT NULL,
    meter          text COLLATE "C" NOT NULL,
    quantity        numeric NOT NULL,
    "timestamp"     timestamptz NOT NULL,
    properties      jsonb,
    unique_value   text COLLATE "C",
    correction_of  text COLLATE "C",
    received_at     timestamptz NOT NULL,
    billed_cycle_id text COLLATE "C",
    PRIMARY KEY (business_id, id, "timestamp")
) PARTITION BY RANGE ("timestamp");

-- Listing a customer's events, newest first.
CREATE INDEX usage_events_customer ON usage_events (business_id, customer_id, id);
-- What is not yet billed, per customer, meter and window: the engine's reads.
CREATE INDEX usage_events_unbilled ON usage_events (business_id, customer_id, meter, "timestamp")
    WHERE billed_cycle_id IS NULL;
-- What a cycle billed: invoice evidence and re-rating of a window.
CREATE INDEX usage_events_billed ON usage_events (billed_cycle_id, meter)
    WHERE billed_cycle_id IS NOT NULL;

-- Every event_id a business ever sent, forever, with a hash of its content:
-- the same id again is a duplicate when the content is the same, an error
-- when it differs. The row is kept small and fixed-width, because every
-- accepted event writes one: key is the first 16 bytes of SHA-256(business
-- id, NUL, event_id), content_hash 8 bytes of another SHA-256, id the UUID of
-- the event's id (uev-<id>), and timestamp finds its partition (for
-- corrections, and to compare a resent event with the stored one).
CREATE TABLE usage_event_ids (
    key          uuid PRIMARY KEY,
    content_hash bigint NOT NULL,
    id           uuid NOT NULL,
    "timestamp"  timestamptz NOT NULL
);
