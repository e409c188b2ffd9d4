-- Mutation ids become unique within their tenant rather than across the store: clients
-- may choose them, and one tenant's choice must neither fail for nor reveal another's.
-- SQLite cannot drop a column's UNIQUE constraint, so the table is made again with the
-- same columns in the same order and the rows copied over, keeping their list cursors.

CREATE TABLE mutations_new (
    seq             INTEGER PRIMARY KEY,
    id              BLOB    NOT NULL CHECK (length(id) = 16),
    tenant          TEXT    NOT NULL,
    wallet          TEXT    NOT NULL,
    customer        TEXT    NOT NULL,
    unit_code       TEXT    NOT NULL,
    unit_scale      INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('top_up', 'debit', 'adjustment',
                        'transfer_out', 'transfer_in', 'hold_commit', 'hold_release', 'expiry')),
    amount          INTEGER NOT NULL,
    balance_after   INTEGER NOT NULL,
    reference_kind  TEXT    NOT NULL,
    reference_text  TEXT    NOT NULL,
    reference_link  TEXT    NOT NULL,
    hold            BLOB,
    transfer        BLOB,
    counter_wallet  TEXT,
    occurred_at     INTEGER NOT NULL,
    recorded_at     INTEGER NOT NULL,
    UNIQUE (tenant, id),
    FOREIGN KEY (tenant, wallet) REFERENCES wallets (tenant, id)
);

INSERT INTO mutations_new SELECT * FROM mutations;
DROP TABLE mutations;
ALTER TABLE mutations_new RENAME TO mutations;

CREATE INDEX mutations_by_wallet ON mutations (tenant, wallet, seq);
CREATE INDEX mutations_by_customer ON mutations (tenant, customer, seq);
CREATE INDEX mutations_by_tenant ON mutations (tenant, seq);
