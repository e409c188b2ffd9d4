-- Dialects gain durable records and a queue of background jobs; wallets gain a
-- ceiling, the highest balance they may reach (NULL when there is none).

ALTER TABLE wallets ADD COLUMN ceiling BIGINT CHECK (ceiling >= 0);

-- A dialect's own rows, opaque to the store and replaced by compare-and-set on
-- `version`; two instances racing to insert one break the primary key, and the loser
-- is told the condition failed.
CREATE TABLE records (
    tenant      TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    kind        TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT   NOT NULL,
    version     BIGINT NOT NULL CHECK (version >= 1),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, kind, key)
);

-- Background work, shared by every instance. A claim moves `due_at` to the end of its
-- lease (taking rows SKIP LOCKED), so a job whose worker died is due again when the
-- lease ends.
CREATE TABLE jobs (
    tenant      TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    queue       TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    payload     TEXT    NOT NULL,
    due_at      BIGINT  NOT NULL,
    attempts    INTEGER NOT NULL CHECK (attempts >= 0),
    PRIMARY KEY (tenant, queue, id)
);

CREATE INDEX jobs_due ON jobs (queue, due_at);
