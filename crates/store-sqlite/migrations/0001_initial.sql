-- The first schema of the prepaid SQLite store.
--
-- Every table is keyed by tenant first and every query names the tenant, so no tenant
-- can reach another's rows. Times are microseconds since the Unix epoch (UTC); UUIDs
-- are 16-byte blobs; client-chosen ids are text.

CREATE TABLE tenants (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    -- 1 for the tenant made by bootstrap: only it may create tenants.
    operator    INTEGER NOT NULL CHECK (operator IN (0, 1)),
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE customers (
    tenant      TEXT    NOT NULL REFERENCES tenants (id),
    id          TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

CREATE TABLE api_keys (
    tenant         TEXT    NOT NULL REFERENCES tenants (id),
    name           TEXT    NOT NULL,
    -- Unique across the store: a secret alone finds its key and tenant.
    secret_sha256  BLOB    NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
    scope_read     INTEGER NOT NULL CHECK (scope_read IN (0, 1)),
    scope_write    INTEGER NOT NULL CHECK (scope_write IN (0, 1)),
    scope_admin    INTEGER NOT NULL CHECK (scope_admin IN (0, 1)),
    customer       TEXT,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (tenant, customer) REFERENCES customers (tenant, id)
) WITHOUT ROWID;

CREATE TABLE wallets (
    tenant       TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    customer     TEXT    NOT NULL,
    unit_code    TEXT    NOT NULL,
    unit_scale   INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    product      TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('active', 'suspended', 'expired')),
    -- NULL when the wallet has no floor (unlimited overdraft).
    floor        INTEGER CHECK (floor <= 0),
    valid_from   INTEGER,
    valid_until  INTEGER,
    balance      INTEGER NOT NULL,
    held         INTEGER NOT NULL CHECK (held >= 0),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, customer) REFERENCES customers (tenant, id)
) WITHOUT ROWID;

CREATE INDEX wallets_by_customer ON wallets (tenant, customer, id);
CREATE INDEX wallets_due_to_expire ON wallets (valid_until)
    WHERE valid_until IS NOT NULL AND status <> 'expired';

-- The counter-side of the double-entry ledger: one row per tenant, unit and kind,
-- made on first use.
CREATE TABLE system_accounts (
    tenant      TEXT    NOT NULL REFERENCES tenants (id),
    unit_code   TEXT    NOT NULL,
    unit_scale  INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('world', 'revenue', 'adjustment', 'expiry')),
    balance     INTEGER NOT NULL,
    PRIMARY KEY (tenant, unit_code, unit_scale, kind)
) WITHOUT ROWID;

CREATE TABLE mutations (
    -- The list cursor: strictly increasing in commit order.
    seq             INTEGER PRIMARY KEY,
    id              BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
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
    FOREIGN KEY (tenant, wallet) REFERENCES wallets (tenant, id)
);

CREATE INDEX mutations_by_wallet ON mutations (tenant, wallet, seq);
CREATE INDEX mutations_by_customer ON mutations (tenant, customer, seq);
CREATE INDEX mutations_by_tenant ON mutations (tenant, seq);

-- Hold ids, like mutation ids, are UUIDs the server makes: unique across the store.
CREATE TABLE holds (
    id                BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    tenant            TEXT    NOT NULL,
    wallet            TEXT    NOT NULL,
    customer          TEXT    NOT NULL,
    amount            INTEGER NOT NULL CHECK (amount > 0),
    committed_amount  INTEGER,
    status            TEXT    NOT NULL CHECK (status IN ('pending', 'committed', 'released', 'expired')),
    reference_kind    TEXT    NOT NULL,
    reference_text    TEXT    NOT NULL,
    reference_link    TEXT    NOT NULL,
    expires_at        INTEGER,
    created_at        INTEGER NOT NULL,
    settled_at        INTEGER,
    FOREIGN KEY (tenant, wallet) REFERENCES wallets (tenant, id)
) WITHOUT ROWID;

CREATE INDEX holds_pending_by_expiry ON holds (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;
CREATE INDEX holds_pending_by_wallet ON holds (tenant, wallet)
    WHERE status = 'pending';

-- What a mutating request with an idempotency key did, so that a repeat gets the same
-- answer. Only carried-out requests are recorded. The answer is rebuilt from the
-- entities it names; a wallet changes later, so the changing part of a wallet answer is
-- kept here as it was first given.
CREATE TABLE idempotency_keys (
    tenant          TEXT    NOT NULL REFERENCES tenants (id),
    key             TEXT    NOT NULL,
    fingerprint     BLOB    NOT NULL CHECK (length(fingerprint) = 32),
    result_kind     TEXT    NOT NULL,
    result_id       TEXT    NOT NULL,
    result_id2      TEXT,
    wallet_status   TEXT,
    wallet_balance  INTEGER,
    wallet_held     INTEGER,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
