-- Holds gain a direction: a debit hold sets aside available funds (as every hold did
-- before), a credit hold sets aside room under the wallet's ceiling for a credit on
-- its way in. Wallets gain `incoming`, the sum of their pending credit holds, which
-- every credit must fit beside.

ALTER TABLE wallets ADD COLUMN incoming BIGINT NOT NULL DEFAULT 0 CHECK (incoming >= 0);

ALTER TABLE holds ADD COLUMN direction TEXT NOT NULL DEFAULT 'debit'
    CHECK (direction IN ('debit', 'credit'));
