-- Wallets gain the time their balance, held or status last changed; a wallet that
-- existed before is taken to have last changed when it was created.

ALTER TABLE wallets ADD COLUMN updated_at BIGINT;

UPDATE wallets SET updated_at = created_at;

ALTER TABLE wallets ALTER COLUMN updated_at SET NOT NULL;

-- An idempotency record of a wallet answer keeps the update time it showed, so a
-- replay answers the same; a record from before shows the time it was made, which is
-- when a wallet created or whose status was changed by that request last changed.
ALTER TABLE idempotency_keys ADD COLUMN wallet_updated_at BIGINT;

UPDATE idempotency_keys SET wallet_updated_at = created_at WHERE result_kind = 'wallet';
