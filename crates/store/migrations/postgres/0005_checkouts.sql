-- Split-tender checkouts, and the payment processor simulator's own records.
-- Timestamps are BIGINT milliseconds since the Unix epoch, UTC.

-- A checkout's state (its tenders, refunds and status) is one JSON document that the service
-- reads (locked FOR UPDATE), changes and writes back whole, in the same transaction as the
-- ledger writes of the step that changed it. `version` grows by one per write: a driver
-- writes only over the version it read, so two drivers of one checkout (a request and the
-- recovery loop, or two giftd processes) never both apply a step. `open` says a step is left
-- to run; `lease_until` keeps the recovery loop off a checkout that a live request is driving.
CREATE TABLE checkouts (
    id           TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    state        JSONB NOT NULL,
    version      BIGINT NOT NULL CHECK (version >= 1),
    open         BOOLEAN NOT NULL,
    lease_until  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX checkouts_merchant ON checkouts (merchant_id, id);
CREATE INDEX checkouts_open ON checkouts (lease_until) WHERE open;

-- The built-in simulated card processor keeps its payments here, apart from giftd's own
-- records, and writes them in transactions of its own: to giftd it is an outside system that
-- outlives a giftd process (its state survives a kill, as a real processor's would).
CREATE TABLE simulated_payments (
    reference   TEXT PRIMARY KEY,
    state       JSONB NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
