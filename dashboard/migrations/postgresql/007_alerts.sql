-- PostgreSQL (as the DuckDB migration, with PostgreSQL's append-only triggers).
-- Alerts that reach a person: every alert the alerts worker sends, fails, retries or gives up is
-- appended here, and nothing is ever changed or removed. The log is also the worker's progress: an
-- alert whose attempt is logged as sent is never sent again, and one claimed ("sending") by a worker
-- is not claimed by another (one row per alert, attempt and result).
--
-- The report id is not a foreign key, as in DuckDB (where a table that others reference cannot be
-- rebuilt): the worker writes only alerts of reports it has just read.

CREATE SEQUENCE alert_log_seq START 1;

CREATE TABLE alert_log (
    log_id       BIGINT PRIMARY KEY DEFAULT nextval('alert_log_seq'),
    -- One alert: a report, its tier, the step of its chain (or "overdue", "undelivered") and the contact.
    alert_key    VARCHAR NOT NULL CHECK (length(alert_key) BETWEEN 1 AND 400),
    report_id    VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL CHECK (kind IN ('chain', 'overdue', 'undelivered')),
    tier         VARCHAR NOT NULL CHECK (tier IN ('emergency', 'urgent', 'soon', 'routine')),
    chain        VARCHAR CHECK (length(chain) <= 100),
    step         INTEGER CHECK (step >= 1),
    steps        INTEGER CHECK (steps >= 1),
    contact      VARCHAR NOT NULL CHECK (length(contact) BETWEEN 1 AND 100),
    contact_name VARCHAR NOT NULL CHECK (length(contact_name) BETWEEN 1 AND 200),
    channel      VARCHAR NOT NULL CHECK (length(channel) BETWEEN 1 AND 100),
    channel_type VARCHAR NOT NULL CHECK (channel_type IN ('smtp', 'webhook', 'mailbox', 'log')),
    address      VARCHAR NOT NULL CHECK (length(address) BETWEEN 1 AND 400),
    attempt      INTEGER NOT NULL CHECK (attempt >= 1),
    result       VARCHAR NOT NULL CHECK (result IN ('sending', 'sent', 'failed', 'gave_up')),
    detail       VARCHAR CHECK (length(detail) <= 2000),
    due_at       TIMESTAMPTZ NOT NULL,
    logged_at    TIMESTAMPTZ NOT NULL,
    retry_at     TIMESTAMPTZ,
    -- The worker that wrote the row (host and process), to tell two workers apart.
    worker       VARCHAR CHECK (length(worker) <= 200),
    UNIQUE (alert_key, attempt, result)
);
CREATE INDEX alert_log_report ON alert_log (report_id);

CREATE TRIGGER alert_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON alert_log
    FOR EACH STATEMENT EXECUTE FUNCTION backline_append_only('the alert log is append-only');
