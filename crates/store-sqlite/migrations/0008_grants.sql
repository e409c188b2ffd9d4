-- Grants: every credit of a wallet is a grant with its own expiry, priority and
-- category; debits draw from them in the ledger's spend order. A grant's id is the id
-- of the mutation that made it.

CREATE TABLE grants (
    tenant      TEXT    NOT NULL,
    id          BLOB    NOT NULL CHECK (length(id) = 16),
    wallet      TEXT    NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    remaining   INTEGER NOT NULL CHECK (remaining >= 0),
    held        INTEGER NOT NULL CHECK (held >= 0),
    priority    INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 100),
    category    TEXT    NOT NULL,
    expires_at  INTEGER,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, wallet) REFERENCES wallets (tenant, id)
) WITHOUT ROWID;

-- A wallet's live grants, which every debit of it reads.
CREATE INDEX grants_live ON grants (tenant, wallet) WHERE remaining > 0;
-- What the sweep expires next.
CREATE INDEX grants_due ON grants (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
-- Every grant of a wallet, live or spent, for its list.
CREATE INDEX grants_by_wallet ON grants (tenant, wallet, created_at);

-- Mutations gain the kind `reversal`, what each drew from each grant (`drawn`: a list of
-- `<grant id in hex>:<amount>` joined by `,`, empty when none) and the mutation a
-- reversal reverses (its id is derived from that one's, so a mutation is reversed at
-- most once). SQLite cannot change a CHECK constraint, so the table is made again with
-- the same columns in the same order, the two new ones last, and the rows copied over,
-- keeping their list cursors.
CREATE TABLE mutations_new (
    seq             INTEGER PRIMARY KEY,
    id              BLOB    NOT NULL CHECK (length(id) = 16),
    tenant          TEXT    NOT NULL,
    wallet          TEXT    NOT NULL,
    customer        TEXT    NOT NULL,
    unit_code       TEXT    NOT NULL,
    unit_scale      INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('top_up', 'debit', 'adjustment',
                        'transfer_out', 'transfer_in', 'hold_commit', 'hold_release', 'expiry',
                        'reversal')),
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
    drawn           TEXT    NOT NULL DEFAULT '',
    reverses        BLOB    CHECK (reverses IS NULL OR length(reverses) = 16),
    UNIQUE (tenant, id),
    FOREIGN KEY (tenant, wallet) REFERENCES wallets (tenant, id)
);

INSERT INTO mutations_new SELECT *, '', NULL FROM mutations;
DROP TABLE mutations;
ALTER TABLE mutations_new RENAME TO mutations;

CREATE INDEX mutations_by_wallet ON mutations (tenant, wallet, seq);
CREATE INDEX mutations_by_customer ON mutations (tenant, customer, seq);
CREATE INDEX mutations_by_tenant ON mutations (tenant, seq);

-- What a hold reserved of each grant, in the form of `drawn`.
ALTER TABLE holds ADD COLUMN reserved TEXT NOT NULL DEFAULT '';

-- A wallet holding credit before grants existed holds it as one paid grant that never
-- expires, of the middle priority, made by its latest mutation.
INSERT INTO grants (tenant, id, wallet, amount, remaining, held, priority, category,
                    expires_at, created_at)
SELECT w.tenant,
       (SELECT m.id FROM mutations m WHERE m.tenant = w.tenant AND m.wallet = w.id
        ORDER BY m.seq DESC LIMIT 1),
       w.id, w.balance, w.balance, 0, 50, 'paid', NULL, w.updated_at
FROM wallets w
WHERE w.balance > 0;
