-- Dialects gain durable records and a queue of background jobs; wallets gain a
-- ceiling, the highest balance they may reach (NULL when there is none).

ALTER TABLE wallets ADD COLUMN ceiling INTEGER CHECK (ceiling >= 0);

-- A dialect's own rows, opaque to the store and replaced by compare-and-set on
-- `version`.
CREATE TABLE records (
    tenant      TEXT    NOT NULL REFERENCES tenants (id),
    kind        TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind, key)
) WITHOUT ROWID;

-- Background work. A claim moves `due_at` to the end of its lease, so a job whose
-- worker died is due again when the lease ends.
CREATE TABLE jobs (
    tenant      TEXT    NOT NULL REFERENCES tenants (id),
    queue       TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    due_at      INTEGER NOT NULL,
    attempts    INTEGER NOT NULL CHECK (attempts >= 0),
    PRIMARY KEY (tenant, queue, id)
) WITHOUT ROWID;

CREATE INDEX jobs_due ON jobs (queue, due_at);
