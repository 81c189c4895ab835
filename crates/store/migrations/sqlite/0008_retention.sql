-- Retention: giftd serve's pruner deletes idempotency records past their window and webhook
-- events past webhooks.retention_days (docs/OPERATIONS.md). These indexes let it find the
-- oldest rows without scanning the tables.
CREATE INDEX idempotency_records_by_age ON idempotency_records (created_at);
CREATE INDEX events_by_age ON events (created_at);
