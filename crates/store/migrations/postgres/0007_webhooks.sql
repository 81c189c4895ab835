-- Webhooks: the endpoints a merchant registers, the outbox of events, and their deliveries.
-- Timestamps are BIGINT milliseconds since the Unix epoch, UTC.

-- An endpoint's secret is stored encrypted (AES-256-GCM under the service's key, its id as
-- associated data): the dispatcher needs it in clear to sign, so a hash would not do.
-- `event_types` is the service's comma-separated list of subscribed types. Endpoints are
-- disabled, never deleted, so that their deliveries keep naming them.
CREATE TABLE webhook_endpoints (
    seq                    BIGSERIAL PRIMARY KEY,
    id                     TEXT NOT NULL UNIQUE,
    merchant_id            TEXT NOT NULL REFERENCES merchants(id),
    url                    TEXT NOT NULL,
    secret                 BYTEA NOT NULL,
    event_types            TEXT NOT NULL,
    low_balance_threshold  BIGINT CHECK (low_balance_threshold >= 0),
    enabled                BOOLEAN NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_by_merchant ON webhook_endpoints (merchant_id, seq);

-- The outbox: written in the same transaction as the effect it reports, so a committed
-- effect always has its event and a rolled-back one never does. `payload` is the exact JSON
-- body that is delivered and signed.
CREATE TABLE events (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX events_by_merchant ON events (merchant_id, seq);

-- One event to one endpoint, fanned out with the event. `pending` until a 2xx answer
-- (`delivered`) or the last attempt (`failed`); `next_attempt_at` is also the dispatcher's
-- lease: a claimed delivery is pushed into the future while it is being attempted.
CREATE TABLE webhook_deliveries (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    merchant_id      TEXT NOT NULL REFERENCES merchants(id),
    event_id         TEXT NOT NULL REFERENCES events(id),
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id),
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL CHECK (attempts >= 0),
    next_attempt_at  BIGINT NOT NULL,
    last_status      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);

-- Every attempt: its HTTP status, or why there was none (connection refused, timeout).
CREATE TABLE webhook_attempts (
    seq           BIGSERIAL PRIMARY KEY,
    delivery_id   TEXT NOT NULL REFERENCES webhook_deliveries(id),
    attempted_at  BIGINT NOT NULL,
    status        BIGINT,
    error         TEXT,
    duration_ms   BIGINT NOT NULL CHECK (duration_ms >= 0)
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, seq);
