-- Plans, schedules and cycles (SPEC §4.4–§4.6, §5.1–§5.2). The engine's
-- jobs act on the rows: a cycle's next_action and next_action_at say what
-- is due and when (rows are the truth, jobs are triggers).

-- Schedules: when a plan's cycles fall due and how failed charges are
-- retried. The three retry columns are all NULL when there are no retries.
CREATE TABLE recurring_schedules (
    id                           text COLLATE "C" PRIMARY KEY,
    business_id                  text COLLATE "C" NOT NULL REFERENCES businesses (id),
    reference_id                 text COLLATE "C" NOT NULL CHECK (length(reference_id) BETWEEN 1 AND 255),
    "interval"                   text NOT NULL CHECK ("interval" IN ('DAY', 'WEEK', 'MONTH')),
    interval_count               integer NOT NULL CHECK (interval_count BETWEEN 1 AND 365),
    total_recurrence             integer CHECK (total_recurrence BETWEEN 1 AND 32000),
    anchor_date                  timestamptz NOT NULL,
    retry_interval               text CHECK (retry_interval = 'DAY'),
    retry_interval_count         integer CHECK (retry_interval_count BETWEEN 1 AND 365),
    total_retry                  integer CHECK (total_retry BETWEEN 1 AND 10),
    failed_attempt_notifications integer[] NOT NULL DEFAULT '{}',
    created                      timestamptz NOT NULL,
    updated                      timestamptz NOT NULL,
    UNIQUE (business_id, id),
    CHECK ((total_retry IS NULL) = (retry_interval IS NULL) AND (total_retry IS NULL) = (retry_interval_count IS NULL))
);

-- Plans (Xendit's recurring plan shape, plus usage charges). Money is
-- numeric in the plan's currency. The AUTH page's secret is kept only as
-- its SHA-256 (auth_secret_hash); auth_attempt numbers the Pay and Save
-- attempts made from the page and auth_payment_request_id is the latest.
CREATE TABLE recurring_plans (
    id                      text COLLATE "C" PRIMARY KEY,
    business_id             text COLLATE "C" NOT NULL REFERENCES businesses (id),
    customer_id             text COLLATE "C" NOT NULL,
    reference_id            text COLLATE "C" NOT NULL CHECK (length(reference_id) BETWEEN 1 AND 255),
    recurring_action        text NOT NULL CHECK (recurring_action = 'PAYMENT'),
    currency                text NOT NULL,
    amount                  numeric NOT NULL CHECK (amount >= 0),
    schedule_id             text COLLATE "C" NOT NULL,
    payment_methods         jsonb NOT NULL DEFAULT '[]',
    immediate_action_type   text CHECK (immediate_action_type = 'FULL_AMOUNT'),
    notification_config     jsonb,
    failed_cycle_action     text NOT NULL DEFAULT 'RESUME' CHECK (failed_cycle_action IN ('STOP', 'RESUME')),
    metadata                jsonb,
    description             text,
    items                   jsonb,
    success_return_url      text,
    failure_return_url      text,
    usage_charges           jsonb NOT NULL DEFAULT '[]',
    amount_lead_days        integer NOT NULL DEFAULT 1 CHECK (amount_lead_days >= 1),
    review_policy           jsonb NOT NULL DEFAULT '{"mode": "AUTO", "max_total": null, "usage_factor": 3}',
    status                  text NOT NULL CHECK (status IN ('REQUIRES_ACTION', 'PENDING', 'ACTIVE', 'INACTIVE')),
    recurring_cycle_count   integer NOT NULL DEFAULT 0 CHECK (recurring_cycle_count >= 0),
    activated_at            timestamptz,
    failure_code            text,
    auth_secret_hash        bytea UNIQUE,
    auth_attempt            integer NOT NULL DEFAULT 0,
    auth_payment_request_id text COLLATE "C",
    created                 timestamptz NOT NULL,
    updated                 timestamptz NOT NULL,
    UNIQUE (business_id, id),
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id),
    FOREIGN KEY (business_id, schedule_id) REFERENCES recurring_schedules (business_id, id),
    FOREIGN KEY (business_id, auth_payment_request_id) REFERENCES payment_requests (business_id, id),
    CHECK (status <> 'ACTIVE' OR activated_at IS NOT NULL)
);
CREATE INDEX recurring_plans_customer ON recurring_plans (business_id, customer_id, id);
CREATE INDEX recurring_plans_schedule ON recurring_plans (schedule_id);
CREATE UNIQUE INDEX recurring_plans_auth_payment_request ON recurring_plans (business_id, auth_payment_request_id)
    WHERE auth_payment_request_id IS NOT NULL;

-- Cycles. amount is NULL until the engine fixes it; amount_override is the
-- utility's PATCHed amount. fix_at (plans.FixAt) and the usage window are
-- set when the cycle is created; next_action (FIX_AMOUNT at creation) and
-- next_action_at are the engine's schedule, NULL once nothing is due.
CREATE TABLE recurring_cycles (
    id                  text COLLATE "C" PRIMARY KEY,
    business_id         text COLLATE "C" NOT NULL REFERENCES businesses (id),
    plan_id             text COLLATE "C" NOT NULL,
    customer_id         text COLLATE "C" NOT NULL,
    cycle_number        integer NOT NULL CHECK (cycle_number >= 1),
    type                text NOT NULL CHECK (type IN ('SCHEDULED', 'IMMEDIATE')),
    status              text NOT NULL CHECK (status IN ('SCHEDULED', 'PENDING', 'RETRYING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    scheduled_timestamp timestamptz NOT NULL,
    currency            text NOT NULL,
    amount              numeric CHECK (amount >= 0),
    amount_override     numeric CHECK (amount_override >= 0),
    amount_fixed_at     timestamptz,
    fix_at              timestamptz NOT NULL,
    usage_window_start  timestamptz NOT NULL,
    usage_window_end    timestamptz NOT NULL,
    invoice_id          text COLLATE "C",
    attempt_count       integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    metadata            jsonb,
    next_action         text,
    next_action_at      timestamptz,
    created             timestamptz NOT NULL,
    updated             timestamptz NOT NULL,
    UNIQUE (plan_id, cycle_number),
    UNIQUE (business_id, id),
    FOREIGN KEY (business_id, plan_id) REFERENCES recurring_plans (business_id, id),
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id),
    CHECK (usage_window_start <= usage_window_end),
    CHECK ((amount IS NULL) = (amount_fixed_at IS NULL)),
    CHECK ((next_action IS NULL) = (next_action_at IS NULL))
);
CREATE INDEX recurring_cycles_next_action_at ON recurring_cycles (next_action_at) WHERE next_action IS NOT NULL;
CREATE INDEX recurring_cycles_plan ON recurring_cycles (plan_id, id);

-- A plan's AUTH page saves the customer's payment method with a Pay and
-- Save of amount 0: nothing is charged, so its payment is of 0 too.
ALTER TABLE payment_requests DROP CONSTRAINT payment_requests_request_amount_check,
    ADD CONSTRAINT payment_requests_request_amount_check CHECK (request_amount > 0 OR (type = 'PAY_AND_SAVE' AND request_amount = 0));
ALTER TABLE payments DROP CONSTRAINT payments_amount_check,
    ADD CONSTRAINT payments_amount_check CHECK (amount >= 0);
