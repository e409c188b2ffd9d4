-- Metadata: the client's own labels of mutations, holds and wallets, each a JSON object
-- of strings (`{}` when there are none). A grant's labels are those of the mutation that
-- made it (its id is that mutation's), so grants keep no copy.

ALTER TABLE mutations ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE holds ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE wallets ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
