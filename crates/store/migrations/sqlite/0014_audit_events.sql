-- The audit trail: who (an API key, a staff member, the command line), did what (the
-- operation, its method and path, the objects it named or made), from where (the client's
-- address, the request id), when, and how it ended (succeeded, refused, failed; the status
-- answered). A state-changing request's row is written in the same transaction as its effect,
-- or, refused before it reached one, on its own. Append-only; no secret is ever in it (the
-- request body is not kept, and a long run of digits in a path is masked to its last 4).
-- One key serves both the merchant's listing, newest first (ids are time-ordered), and the
-- lookup of a cursor.
CREATE TABLE audit_events (
    merchant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    actor_type TEXT NOT NULL CHECK (actor_type IN ('api_key', 'staff', 'cli')),
    actor_id TEXT,
    request_id TEXT,
    client_address TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    operation TEXT NOT NULL,
    objects TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'refused', 'failed', 'replayed')),
    status BIGINT NOT NULL,
    reason TEXT,
    PRIMARY KEY (merchant_id, id)
) WITHOUT ROWID;
CREATE TRIGGER audit_events_append_only_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: its rows cannot be updated'); END;
CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: its rows cannot be deleted'); END;
