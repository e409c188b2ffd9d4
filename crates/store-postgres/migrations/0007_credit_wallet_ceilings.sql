-- A wallet counted in credits (CREDIT at scale 0 to 3) has a ceiling at the balance
-- whose x10000 credits fit a signed 64-bit integer, so that clients reading credits
-- (Talkdesk) can read every balance: i64::MAX / 10^(4 - scale). Wallets opened before
-- the ledger applied it get it now; a balance already past it may still be spent.
UPDATE wallets
SET ceiling = CASE unit_scale
        WHEN 0 THEN 922337203685477
        WHEN 1 THEN 9223372036854775
        WHEN 2 THEN 92233720368547758
        ELSE 922337203685477580
    END
WHERE unit_code = 'CREDIT'
    AND unit_scale <= 3
    AND (ceiling IS NULL OR ceiling > CASE unit_scale
        WHEN 0 THEN 922337203685477
        WHEN 1 THEN 9223372036854775
        WHEN 2 THEN 92233720368547758
        ELSE 922337203685477580
    END);
