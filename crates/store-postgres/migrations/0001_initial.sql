-- The first schema of the prepaid PostgreSQL store.
--
-- Every table is keyed by tenant first and every query names the tenant, so no tenant
-- can reach another's rows. Times are microseconds since the Unix epoch (UTC).
-- Client-chosen ids sort byte by byte (COLLATE "C"), whatever the database's collation,
-- so that pages come in the same order as in every other store.
--
-- Several prepaid instances may share the schema: what keeps the ledger right between
-- them is here (row locks on wallets and holds taken by the writers, the keys below,
-- and the bound on system account balances), not in any one process.

CREATE TABLE tenants (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    -- True for the tenant made by bootstrap: only it may create tenants.
    operator    BOOLEAN NOT NULL,
    created_at  BIGINT  NOT NULL,
    -- The list cursor of the tenant's next mutation. A batch takes its numbers just
    -- before it commits, under this row's lock, so cursors increase in commit order.
    next_seq    BIGINT  NOT NULL DEFAULT 1
);

CREATE TABLE customers (
    tenant      TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id          TEXT COLLATE "C" NOT NULL,
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE api_keys (
    tenant         TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    name           TEXT COLLATE "C" NOT NULL,
    -- Unique across the store: a secret alone finds its key and tenant.
    secret_sha256  BYTEA   NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
    scope_read     BOOLEAN NOT NULL,
    scope_write    BOOLEAN NOT NULL,
    scope_admin    BOOLEAN NOT NULL,
    customer       TEXT COLLATE "C",
    created_at     BIGINT  NOT NULL,
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (tenant, customer) REFERENCES customers (tenant, id)
);

CREATE TABLE wallets (
    tenant       TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    customer     TEXT COLLATE "C" NOT NULL,
    unit_code    TEXT COLLATE "C" NOT NULL,
    unit_scale   SMALLINT NOT NULL,
    name         TEXT     NOT NULL,
    product      TEXT     NOT NULL,
    status       TEXT     NOT NULL CHECK (status IN ('active', 'suspended', 'expired')),
    -- NULL when the wallet has no floor (unlimited overdraft).
    floor        BIGINT   CHECK (floor <= 0),
    valid_from   BIGINT,
    valid_until  BIGINT,
    balance      BIGINT   NOT NULL,
    held         BIGINT   NOT NULL CHECK (held >= 0),
    created_at   BIGINT   NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, customer) REFERENCES customers (tenant, id)
);

CREATE INDEX wallets_by_customer ON wallets (tenant, customer, id);
CREATE INDEX wallets_due_to_expire ON wallets (valid_until)
    WHERE valid_until IS NOT NULL AND status <> 'expired';

-- The counter-side of the double-entry ledger: one row per tenant, unit and kind,
-- made on first use. Batches add to it without locking it first, so the bound on a
-- balance is kept here: a batch that would pass it fails and runs again.
CREATE TABLE system_accounts (
    tenant      TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    unit_code   TEXT COLLATE "C" NOT NULL,
    unit_scale  SMALLINT NOT NULL,
    kind        TEXT     NOT NULL CHECK (kind IN ('world', 'revenue', 'adjustment', 'expiry')),
    balance     BIGINT   NOT NULL,
    CONSTRAINT system_accounts_balance_bound
        CHECK (balance BETWEEN -4000000000000000000 AND 4000000000000000000),
    PRIMARY KEY (tenant, unit_code, unit_scale, kind)
);

CREATE TABLE mutations (
    tenant          TEXT COLLATE "C" NOT NULL,
    -- The list cursor, per tenant: strictly increasing in commit order.
    seq             BIGINT   NOT NULL,
    -- Unique across the store.
    id              UUID     NOT NULL UNIQUE,
    wallet          TEXT COLLATE "C" NOT NULL,
    customer        TEXT COLLATE "C" NOT NULL,
    unit_code       TEXT COLLATE "C" NOT NULL,
    unit_scale      SMALLINT NOT NULL,
    kind            TEXT     NOT NULL CHECK (kind IN ('top_up', 'debit', 'adjustment',
                        'transfer_out', 'transfer_in', 'hold_commit', 'hold_release', 'expiry')),
    amount          BIGINT   NOT NULL,
    balance_after   BIGINT   NOT NULL,
    reference_kind  TEXT     NOT NULL,
    reference_text  TEXT     NOT NULL,
    reference_link  TEXT     NOT NULL,
    hold            UUID,
    transfer        UUID,
    counter_wallet  TEXT COLLATE "C",
    occurred_at     BIGINT   NOT NULL,
    recorded_at     BIGINT   NOT NULL,
    PRIMARY KEY (tenant, seq),
    FOREIGN KEY (tenant, wallet) REFERENCES wallets (tenant, id)
);

CREATE INDEX mutations_by_wallet ON mutations (tenant, wallet, seq);
CREATE INDEX mutations_by_customer ON mutations (tenant, customer, seq);

-- Hold ids, like mutation ids, are UUIDs the server makes: unique across the store.
CREATE TABLE holds (
    id                UUID   NOT NULL PRIMARY KEY,
    tenant            TEXT COLLATE "C" NOT NULL,
    wallet            TEXT COLLATE "C" NOT NULL,
    customer          TEXT COLLATE "C" NOT NULL,
    amount            BIGINT NOT NULL CHECK (amount > 0),
    committed_amount  BIGINT,
    status            TEXT   NOT NULL CHECK (status IN ('pending', 'committed', 'released', 'expired')),
    reference_kind    TEXT   NOT NULL,
    reference_text    TEXT   NOT NULL,
    reference_link    TEXT   NOT NULL,
    expires_at        BIGINT,
    created_at        BIGINT NOT NULL,
    settled_at        BIGINT,
    FOREIGN KEY (tenant, wallet) REFERENCES wallets (tenant, id)
);

CREATE INDEX holds_pending_by_expiry ON holds (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;
CREATE INDEX holds_pending_by_wallet ON holds (tenant, wallet)
    WHERE status = 'pending';

-- What a mutating request with an idempotency key did, so that a repeat gets the same
-- answer. Only carried-out requests are recorded; the primary key makes two instances
-- racing with one key record it once (the loser runs its batch again and replays).
CREATE TABLE idempotency_keys (
    tenant          TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    key             TEXT COLLATE "C" NOT NULL,
    fingerprint     BYTEA  NOT NULL CHECK (length(fingerprint) = 32),
    result_kind     TEXT   NOT NULL,
    result_id       TEXT   NOT NULL,
    result_id2      TEXT,
    wallet_status   TEXT,
    wallet_balance  BIGINT,
    wallet_held     BIGINT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant, key)
);
