-- Nothing every batch of a tenant writes is a single row any more, so that batches
-- (of one instance or of several) need not commit one after another.
--
-- A system account is spread over 16 slots (the store's ACCOUNT_SLOTS_MAX): its balance
-- is the sum of its slots' rows, and a batch adds its delta to one slot, chosen so that
-- concurrent batches rarely meet. Each slot is bounded by a sixteenth of the balance
-- bound (4 * 10^18), so that the sum can never pass the bound, whatever batches race;
-- a batch whose slot has no room left spreads its delta over the others.
--
-- The mutations' list cursor comes from one sequence, taken by each mutation as it is
-- inserted, instead of from a per-tenant counter row locked until the commit.

ALTER TABLE system_accounts DROP CONSTRAINT system_accounts_balance_bound;
ALTER TABLE system_accounts DROP CONSTRAINT system_accounts_pkey;
ALTER TABLE system_accounts ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0;

-- An existing balance is shared out evenly over the slots (division truncates toward
-- zero, and the remainder goes one unit at a time to the first slots), so that every
-- slot is within its bound and the slots sum to the balance.
INSERT INTO system_accounts (tenant, unit_code, unit_scale, kind, slot, balance)
SELECT s.tenant, s.unit_code, s.unit_scale, s.kind, n::int2,
    s.balance / 16 + CASE WHEN n < abs(s.balance % 16) THEN sign(s.balance)::int8 ELSE 0 END
FROM system_accounts s CROSS JOIN generate_series(1, 15) AS n
WHERE s.slot = 0;

UPDATE system_accounts
SET balance = balance / 16 + CASE WHEN abs(balance % 16) > 0 THEN sign(balance)::int8 ELSE 0 END
WHERE slot = 0;

ALTER TABLE system_accounts ALTER COLUMN slot DROP DEFAULT;
ALTER TABLE system_accounts ADD CONSTRAINT system_accounts_slot CHECK (slot BETWEEN 0 AND 15);
ALTER TABLE system_accounts ADD CONSTRAINT system_accounts_balance_bound
    CHECK (balance BETWEEN -250000000000000000 AND 250000000000000000);
ALTER TABLE system_accounts ADD PRIMARY KEY (tenant, unit_code, unit_scale, kind, slot);

-- One sequence for every tenant: a tenant's cursors still increase, with gaps. It
-- starts after the highest cursor taken so far, so existing cursors keep their order.
-- No cache: a session holding a cached range would hand out cursors far below those
-- other sessions take meanwhile.
CREATE SEQUENCE mutations_seq AS BIGINT CACHE 1;
SELECT setval('mutations_seq', COALESCE((SELECT max(seq) FROM mutations), 0) + 1, false);

ALTER TABLE tenants DROP COLUMN next_seq;
