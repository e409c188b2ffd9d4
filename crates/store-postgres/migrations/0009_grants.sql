-- Grants: every credit of a wallet is a grant with its own expiry, priority and
-- category; debits draw from them in the ledger's spend order. A grant's id is the id
-- of the mutation that made it. Its rows change only under a lock of its wallet's row.

CREATE TABLE grants (
    tenant      TEXT COLLATE "C" NOT NULL,
    id          UUID     NOT NULL,
    wallet      TEXT COLLATE "C" NOT NULL,
    amount      BIGINT   NOT NULL CHECK (amount > 0),
    remaining   BIGINT   NOT NULL CHECK (remaining >= 0),
    held        BIGINT   NOT NULL CHECK (held >= 0 AND held <= remaining),
    priority    SMALLINT NOT NULL CHECK (priority BETWEEN 0 AND 100),
    category    TEXT     NOT NULL,
    expires_at  BIGINT,
    created_at  BIGINT   NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, wallet) REFERENCES wallets (tenant, id)
);

-- A wallet's live grants, which every debit of it reads.
CREATE INDEX grants_live ON grants (tenant, wallet) WHERE remaining > 0;
-- What the sweep expires next.
CREATE INDEX grants_due ON grants (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
-- Every grant of a wallet, live or spent, for its list.
CREATE INDEX grants_by_wallet ON grants (tenant, wallet, created_at);

-- What a mutation drew from each grant, and what a hold reserved of each: a list of
-- `<grant id in hex>:<amount>` joined by `,`; empty when none.
ALTER TABLE mutations ADD COLUMN drawn TEXT NOT NULL DEFAULT '';
-- The mutation a reversal reverses (its id is derived from that one's, so a mutation is
-- reversed at most once).
ALTER TABLE mutations ADD COLUMN reverses UUID;
ALTER TABLE mutations DROP CONSTRAINT mutations_kind_check;
ALTER TABLE mutations ADD CONSTRAINT mutations_kind_check CHECK (kind IN ('top_up', 'debit',
    'adjustment', 'transfer_out', 'transfer_in', 'hold_commit', 'hold_release', 'expiry',
    'reversal'));
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
