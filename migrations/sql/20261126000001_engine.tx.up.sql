-- The engine's cycle state machine (SPEC §5): invoices and their lines,
-- gapless invoice numbers, the review audit trail, credit notes, charge
-- attempts, and what a customer's suspension refers to.

-- One invoice per cycle. number is given when the invoice is finalized (OPEN),
-- gapless per business and year (invoice_numbers); never reused.
CREATE TABLE invoices (
    id             text COLLATE "C" PRIMARY KEY,
    business_id    text COLLATE "C" NOT NULL REFERENCES businesses (id),
    number         text COLLATE "C",
    number_year    integer,
    cycle_id       text COLLATE "C" NOT NULL UNIQUE,
    plan_id        text COLLATE "C" NOT NULL,
    customer_id    text COLLATE "C" NOT NULL,
    currency       text NOT NULL,
    period_start   timestamptz NOT NULL,
    period_end     timestamptz NOT NULL,
    status         text NOT NULL CHECK (status IN ('DRAFT', 'OPEN', 'PAID', 'UNCOLLECTIBLE', 'VOID')),
    review_status  text NOT NULL CHECK (review_status IN ('NOT_REQUIRED', 'NEEDS_REVIEW', 'APPROVED', 'ON_HOLD')),
    review_reasons text[] NOT NULL DEFAULT '{}',
    -- While ON_HOLD: the review status to return to on release, and when
    -- the cycle's charge was due when it was held (NULL: not chargeable).
    held_review_status text CHECK (held_review_status IN ('NOT_REQUIRED', 'NEEDS_REVIEW', 'APPROVED')),
    held_charge_at timestamptz,
    subtotal       numeric NOT NULL,
    total          numeric NOT NULL CHECK (total >= 0),
    amount_paid    numeric NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    due_at         timestamptz NOT NULL,
    finalized_at   timestamptz,
    paid_at        timestamptz,
    voided_at      timestamptz,
    created        timestamptz NOT NULL,
    updated        timestamptz NOT NULL,
    UNIQUE (business_id, id),
    UNIQUE (business_id, number),
    CHECK ((review_status = 'ON_HOLD') = (held_review_status IS NOT NULL)),
    FOREIGN KEY (business_id, cycle_id) REFERENCES recurring_cycles (business_id, id),
    FOREIGN KEY (business_id, plan_id) REFERENCES recurring_plans (business_id, id),
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id),
    CHECK (amount_paid <= total),
    CHECK ((number IS NULL) = (finalized_at IS NULL)),
    CHECK ((number IS NULL) = (number_year IS NULL))
);
CREATE INDEX invoices_business ON invoices (business_id, id);
CREATE INDEX invoices_customer ON invoices (business_id, customer_id, id);
CREATE INDEX invoices_plan ON invoices (business_id, plan_id, id);
CREATE INDEX invoices_review ON invoices (business_id, review_status, due_at)
    WHERE review_status IN ('NEEDS_REVIEW', 'ON_HOLD');

ALTER TABLE recurring_cycles
    ADD FOREIGN KEY (business_id, invoice_id) REFERENCES invoices (business_id, id) DEFERRABLE INITIALLY DEFERRED;

-- An invoice's lines; the invoice's total is the sum of their amounts, each
-- already rounded to the currency. A LATE_USAGE line names the cycle whose
-- window its events belong to; an ADJUSTMENT line its reason and author.
CREATE TABLE invoice_lines (
    id            text COLLATE "C" PRIMARY KEY,
    business_id   text COLLATE "C" NOT NULL,
    invoice_id    text COLLATE "C" NOT NULL REFERENCES invoices (id),
    position      integer NOT NULL CHECK (position >= 1),
    kind          text NOT NULL CHECK (kind IN ('BASE', 'USAGE', 'LATE_USAGE', 'ADJUSTMENT', 'MINIMUM')),
    meter         text COLLATE "C",
    description   text NOT NULL,
    quantity      numeric,
    unit_amount   numeric,
    tiers         jsonb,
    amount        numeric NOT NULL,
    usage         jsonb,
    late_cycle_id text COLLATE "C",
    -- USAGE lines: the usage charge (price, minimum_amount) the window was
    -- rated with, so that late usage re-rates the window with it.
    charge        jsonb,
    reason        text,
    created_by    text COLLATE "C",
    created       timestamptz NOT NULL,
    UNIQUE (invoice_id, position),
    CHECK ((kind = 'LATE_USAGE') = (late_cycle_id IS NOT NULL)),
    CHECK (kind <> 'ADJUSTMENT' OR reason IS NOT NULL)
);
CREATE INDEX invoice_lines_late ON invoice_lines (late_cycle_id, meter) WHERE late_cycle_id IS NOT NULL;

-- The last invoice number given per business and year; the row is locked
-- while a number is taken, so numbers are gapless and never reused.
CREATE TABLE invoice_numbers (
    business_id text COLLATE "C" NOT NULL REFERENCES businesses (id),
    year        integer NOT NULL,
    last        integer NOT NULL CHECK (last >= 0),
    PRIMARY KEY (business_id, year)
);

-- Every review action and change of an invoice: who (an API key id, a
-- dashboard user, or "engine"), when, what, and a note.
CREATE TABLE invoice_audit (
    id          text COLLATE "C" PRIMARY KEY,
    business_id text COLLATE "C" NOT NULL,
    invoice_id  text COLLATE "C" NOT NULL REFERENCES invoices (id),
    action      text NOT NULL,
    actor       text COLLATE "C" NOT NULL,
    note        text,
    created     timestamptz NOT NULL
);
CREATE INDEX invoice_audit_invoice ON invoice_audit (invoice_id, created);

-- Money owed back after payment (a refund need), against a paid invoice.
CREATE TABLE credit_notes (
    id          text COLLATE "C" PRIMARY KEY,
    business_id text COLLATE "C" NOT NULL,
    invoice_id  text COLLATE "C" NOT NULL REFERENCES invoices (id),
    amount      numeric NOT NULL CHECK (amount > 0),
    reason      text NOT NULL,
    actor       text COLLATE "C" NOT NULL,
    created     timestamptz NOT NULL
);
CREATE INDEX credit_notes_invoice ON credit_notes (invoice_id);

-- A cycle's charge attempts. An attempt tries the plan's tokens in rank
-- order, one action each; provider_key (<cycle id>/<attempt>/<action>) is
-- the provider idempotency key, written before the provider is called.
CREATE TABLE cycle_attempts (
    id                   text COLLATE "C" PRIMARY KEY,
    business_id          text COLLATE "C" NOT NULL,
    cycle_id             text COLLATE "C" NOT NULL,
    attempt_number       integer NOT NULL CHECK (attempt_number >= 1),
    action_number        integer NOT NULL CHECK (action_number >= 1),
    type                 text NOT NULL CHECK (type IN ('INITIAL', 'RETRY', 'FORCED')),
    status               text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    payment_token_id     text COLLATE "C",
    payment_request_id   text COLLATE "C",
    provider_key         text COLLATE "C" NOT NULL UNIQUE,
    failure_code         text,
    next_retry_timestamp timestamptz,
    created              timestamptz NOT NULL,
    updated              timestamptz NOT NULL,
    UNIQUE (cycle_id, attempt_number, action_number),
    FOREIGN KEY (business_id, cycle_id) REFERENCES recurring_cycles (business_id, id)
);
CREATE INDEX cycle_attempts_payment_request ON cycle_attempts (payment_request_id) WHERE payment_request_id IS NOT NULL;

-- What a customer's service status refers to (SPEC §4.8).
ALTER TABLE customers
    ADD COLUMN service_plan_id    text COLLATE "C",
    ADD COLUMN service_invoice_id text COLLATE "C";

-- An IMMEDIATE cycle (immediate_action_type FULL_AMOUNT) is cycle 0.
ALTER TABLE recurring_cycles DROP CONSTRAINT recurring_cycles_cycle_number_check,
    ADD CONSTRAINT recurring_cycles_cycle_number_check CHECK (cycle_number >= 1 OR (type = 'IMMEDIATE' AND cycle_number = 0));

-- Charging (docs/engine.md). The amount each attempt row charged; forced
-- attempts (at most 5 per cycle) counted apart from the scheduled ones in
-- attempt_count, which the retry budget counts.
ALTER TABLE cycle_attempts ADD COLUMN amount numeric NOT NULL CHECK (amount >= 0);
ALTER TABLE recurring_cycles
    ADD COLUMN forced_attempt_count integer NOT NULL DEFAULT 0 CHECK (forced_attempt_count BETWEEN 0 AND 5);
-- The retry rules of a cycle: its schedule's when the cycle was created (a
-- schedule's changes apply from the next cycle created). NULL: no retries.
ALTER TABLE recurring_cycles
    ADD COLUMN retry_interval_count         integer CHECK (retry_interval_count >= 1),
    ADD COLUMN total_retry                  integer CHECK (total_retry >= 0),
    ADD COLUMN failed_attempt_notifications integer[];

-- Payments of an invoice outside its cycle's attempts: POST
-- /invoices/{id}/pay (a saved token) and payment links (a hosted page).
-- number counts them per invoice; provider_key (<invoice id>/pay/<n> or
-- <invoice id>/link/<n>) is written before the provider is called.
CREATE TABLE invoice_payments (
    business_id        text COLLATE "C" NOT NULL,
    invoice_id         text COLLATE "C" NOT NULL REFERENCES invoices (id),
    number             integer NOT NULL CHECK (number >= 1),
    kind               text NOT NULL CHECK (kind IN ('PAY', 'PAYMENT_LINK')),
    amount             numeric NOT NULL CHECK (amount > 0),
    payment_token_id   text COLLATE "C",
    provider_key       text COLLATE "C" NOT NULL UNIQUE,
    payment_request_id text COLLATE "C",
    created            timestamptz NOT NULL,
    PRIMARY KEY (invoice_id, number),
    CHECK ((kind = 'PAY') = (payment_token_id IS NOT NULL))
);

-- The engine's pay pages (<base>/pay/<secret>), sent in notifications:
-- opening one sends the customer to a payment link for what the invoice
-- still owes. Only the secret's SHA-256 is kept.
CREATE TABLE pay_pages (
    secret_hash bytea PRIMARY KEY,
    business_id text COLLATE "C" NOT NULL,
    invoice_id  text COLLATE "C" NOT NULL REFERENCES invoices (id),
    created     timestamptz NOT NULL
);
CREATE INDEX pay_pages_invoice ON pay_pages (invoice_id);

-- When a payment link stops working, when its provider says.
ALTER TABLE payment_requests ADD COLUMN expires_at timestamptz;
