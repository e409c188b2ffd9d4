//! Writing a batch's changes: one statement per kind of row, each taking every row of
//! the batch at once through `unnest` of arrays.
//!
//! The order is fixed: new rows (tenants, customers, keys, wallets, holds), then the
//! wallets and holds the batch changed (locked since they were loaded), then the
//! idempotency keys (a key recorded meanwhile by another batch breaks the primary key
//! and the batch runs again, to replay it), then the system accounts, each `balance =
//! balance + delta` in the order of their keys, and last the list cursors and the
//! mutations. The system account rows and the tenants' cursor rows stay locked from
//! their update to `COMMIT`, which keeps that window short and makes cursors increase
//! in commit order.

use crate::error::Fail;
use deadpool_postgres::Transaction;
use prepaid_ledger::{CustomerId, Floor, Timestamp, WalletId};
use prepaid_store::exec::Changes;
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;

async fn execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Fail> {
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&statement, params).await?)
}

/// Checks that a statement touched every row it was given.
fn all(what: &str, expected: usize, got: u64) -> Result<(), Fail> {
    if u64::try_from(expected).ok() == Some(got) {
        Ok(())
    } else {
        Err(Fail::corrupt(format_args!(
            "{what}: {got} rows written of {expected}"
        )))
    }
}

fn micros(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::as_micros)
}

/// Writes `changes` in the transaction.
pub(crate) async fn write(tx: &Transaction<'_>, changes: &Changes) -> Result<(), Fail> {
    if !changes.tenants.is_empty() {
        let t = &changes.tenants;
        let ids: Vec<&str> = t.iter().map(|t| t.id.as_str()).collect();
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        let operators: Vec<bool> = t.iter().map(|t| t.operator).collect();
        let created: Vec<i64> = t.iter().map(|t| t.created_at.as_micros()).collect();
        let n = execute(
            tx,
            "INSERT INTO tenants (id, name, operator, created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::int8[])",
            &[&ids, &names, &operators, &created],
        )
        .await?;
        all("tenants", t.len(), n)?;
    }
    if !changes.customers.is_empty() {
        let c = &changes.customers;
        let tenants: Vec<&str> = c.iter().map(|c| c.tenant.as_str()).collect();
        let ids: Vec<&str> = c.iter().map(|c| c.id.as_str()).collect();
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        let created: Vec<i64> = c.iter().map(|c| c.created_at.as_micros()).collect();
        let links: Vec<&str> = c.iter().map(|c| c.link.as_str()).collect();
        let n = execute(
            tx,
            "INSERT INTO customers (tenant, id, name, created_at, link) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[])",
            &[&tenants, &ids, &names, &created, &links],
        )
        .await?;
        all("customers", c.len(), n)?;
    }
    if !changes.api_keys.is_empty() {
        let k = &changes.api_keys;
        let tenants: Vec<&str> = k.iter().map(|k| k.tenant.as_str()).collect();
        let names: Vec<&str> = k.iter().map(|k| k.name.as_str()).collect();
        let secrets: Vec<&[u8]> = k.iter().map(|k| k.secret_sha256.as_slice()).collect();
        let read: Vec<bool> = k.iter().map(|k| k.scopes.read).collect();
        let write: Vec<bool> = k.iter().map(|k| k.scopes.write).collect();
        let admin: Vec<bool> = k.iter().map(|k| k.scopes.admin).collect();
        let customers: Vec<Option<&str>> = k
            .iter()
            .map(|k| k.customer.as_ref().map(CustomerId::as_str))
            .collect();
        let created: Vec<i64> = k.iter().map(|k| k.created_at.as_micros()).collect();
        let n = execute(
            tx,
            "INSERT INTO api_keys (tenant, name, secret_sha256, scope_read, scope_write, \
             scope_admin, customer, created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bool[], $5::bool[], \
             $6::bool[], $7::text[], $8::int8[])",
            &[
                &tenants, &names, &secrets, &read, &write, &admin, &customers, &created,
            ],
        )
        .await?;
        all("api keys", k.len(), n)?;
    }
    if !changes.wallets_new.is_empty() {
        let w = &changes.wallets_new;
        let tenants: Vec<&str> = w.iter().map(|w| w.tenant.as_str()).collect();
        let ids: Vec<&str> = w.iter().map(|w| w.id.as_str()).collect();
        let customers: Vec<&str> = w.iter().map(|w| w.customer.as_str()).collect();
        let codes: Vec<&str> = w.iter().map(|w| w.unit.code()).collect();
        let scales: Vec<i16> = w.iter().map(|w| i16::from(w.unit.scale())).collect();
        let names: Vec<&str> = w.iter().map(|w| w.name.as_str()).collect();
        let products: Vec<&str> = w.iter().map(|w| w.product.as_str()).collect();
        let statuses: Vec<&str> = w.iter().map(|w| w.status.as_str()).collect();
        let floors: Vec<Option<i64>> = w
            .iter()
            .map(|w| match w.floor {
                Floor::Limit(v) => Some(v),
                Floor::Unlimited => None,
            })
            .collect();
        let from: Vec<Option<i64>> = w.iter().map(|w| micros(w.valid_from)).collect();
        let until: Vec<Option<i64>> = w.iter().map(|w| micros(w.valid_until)).collect();
        let balances: Vec<i64> = w.iter().map(|w| w.balance).collect();
        let held: Vec<i64> = w.iter().map(|w| w.held).collect();
        let created: Vec<i64> = w.iter().map(|w| w.created_at.as_micros()).collect();
        let updated: Vec<i64> = w.iter().map(|w| w.updated_at.as_micros()).collect();
        let n = execute(
            tx,
            "INSERT INTO wallets (tenant, id, customer, unit_code, unit_scale, name, product, \
             status, floor, valid_from, valid_until, balance, held, created_at, updated_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int2[], \
             $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], \
             $12::int8[], $13::int8[], $14::int8[], $15::int8[])",
            &[
                &tenants, &ids, &customers, &codes, &scales, &names, &products, &statuses, &floors,
                &from, &until, &balances, &held, &created, &updated,
            ],
        )
        .await?;
        all("new wallets", w.len(), n)?;
    }
    if !changes.holds_new.is_empty() {
        let h = &changes.holds_new;
        let tenants: Vec<&str> = h.iter().map(|h| h.tenant.as_str()).collect();
        let ids: Vec<uuid::Uuid> = h.iter().map(|h| h.id.0).collect();
        let wallets: Vec<&str> = h.iter().map(|h| h.wallet.as_str()).collect();
        let customers: Vec<&str> = h.iter().map(|h| h.customer.as_str()).collect();
        let amounts: Vec<i64> = h.iter().map(|h| h.amount).collect();
        let committed: Vec<Option<i64>> = h.iter().map(|h| h.committed_amount).collect();
        let statuses: Vec<&str> = h.iter().map(|h| h.status.as_str()).collect();
        let ref_kinds: Vec<&str> = h.iter().map(|h| h.reference.kind.as_str()).collect();
        let ref_texts: Vec<&str> = h.iter().map(|h| h.reference.text.as_str()).collect();
        let ref_links: Vec<&str> = h.iter().map(|h| h.reference.link.as_str()).collect();
        let expires: Vec<Option<i64>> = h.iter().map(|h| micros(h.expires_at)).collect();
        let created: Vec<i64> = h.iter().map(|h| h.created_at.as_micros()).collect();
        let settled: Vec<Option<i64>> = h.iter().map(|h| micros(h.settled_at)).collect();
        let n = execute(
            tx,
            "INSERT INTO holds (tenant, id, wallet, customer, amount, committed_amount, status, \
             reference_kind, reference_text, reference_link, expires_at, created_at, settled_at) \
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::int8[], \
             $6::int8[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[], \
             $12::int8[], $13::int8[])",
            &[
                &tenants, &ids, &wallets, &customers, &amounts, &committed, &statuses, &ref_kinds,
                &ref_texts, &ref_links, &expires, &created, &settled,
            ],
        )
        .await?;
        all("new holds", h.len(), n)?;
    }
    if !changes.wallets_changed.is_empty() {
        let w = &changes.wallets_changed;
        let tenants: Vec<&str> = w.iter().map(|w| w.tenant.as_str()).collect();
        let ids: Vec<&str> = w.iter().map(|w| w.id.as_str()).collect();
        let statuses: Vec<&str> = w.iter().map(|w| w.status.as_str()).collect();
        let balances: Vec<i64> = w.iter().map(|w| w.balance).collect();
        let held: Vec<i64> = w.iter().map(|w| w.held).collect();
        let updated: Vec<i64> = w.iter().map(|w| w.updated_at.as_micros()).collect();
        let n = execute(
            tx,
            "UPDATE wallets w SET status = u.status, balance = u.balance, held = u.held, \
             updated_at = u.updated \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
             $6::int8[]) AS u (tenant, id, status, balance, held, updated) \
             WHERE w.tenant = u.tenant AND w.id = u.id",
            &[&tenants, &ids, &statuses, &balances, &held, &updated],
        )
        .await?;
        all("changed wallets", w.len(), n)?;
    }
    if !changes.holds_changed.is_empty() {
        let h = &changes.holds_changed;
        let ids: Vec<uuid::Uuid> = h.iter().map(|h| h.id.0).collect();
        let statuses: Vec<&str> = h.iter().map(|h| h.status.as_str()).collect();
        let committed: Vec<Option<i64>> = h.iter().map(|h| h.committed_amount).collect();
        let settled: Vec<Option<i64>> = h.iter().map(|h| micros(h.settled_at)).collect();
        let n = execute(
            tx,
            "UPDATE holds h SET status = u.status, committed_amount = u.committed, \
             settled_at = u.settled \
             FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int8[]) \
             AS u (id, status, committed, settled) WHERE h.id = u.id",
            &[&ids, &statuses, &committed, &settled],
        )
        .await?;
        all("settled holds", h.len(), n)?;
    }
    if !changes.keys.is_empty() {
        let k = &changes.keys;
        let columns: Vec<_> = k.iter().map(|k| k.recorded.result.to_columns()).collect();
        let tenants: Vec<&str> = k.iter().map(|k| k.tenant.as_str()).collect();
        let keys: Vec<&str> = k.iter().map(|k| k.key.as_str()).collect();
        let fingerprints: Vec<&[u8]> = k
            .iter()
            .map(|k| k.recorded.fingerprint.0.as_slice())
            .collect();
        let kinds: Vec<&str> = columns.iter().map(|c| c.kind).collect();
        let ids: Vec<&str> = columns.iter().map(|c| c.id.as_str()).collect();
        let ids2: Vec<Option<&str>> = columns.iter().map(|c| c.id2.as_deref()).collect();
        let statuses: Vec<Option<&str>> = columns.iter().map(|c| c.wallet.map(|w| w.0)).collect();
        let balances: Vec<Option<i64>> = columns.iter().map(|c| c.wallet.map(|w| w.1)).collect();
        let held: Vec<Option<i64>> = columns.iter().map(|c| c.wallet.map(|w| w.2)).collect();
        let updated: Vec<Option<i64>> = columns.iter().map(|c| c.wallet.map(|w| w.3)).collect();
        let created: Vec<i64> = k.iter().map(|k| k.created_at.as_micros()).collect();
        let n = execute(
            tx,
            "INSERT INTO idempotency_keys (tenant, key, fingerprint, result_kind, result_id, \
             result_id2, wallet_status, wallet_balance, wallet_held, wallet_updated_at, \
             created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::int8[])",
            &[
                &tenants,
                &keys,
                &fingerprints,
                &kinds,
                &ids,
                &ids2,
                &statuses,
                &balances,
                &held,
                &updated,
                &created,
            ],
        )
        .await?;
        all("idempotency keys", k.len(), n)?;
    }
    if !changes.accounts.is_empty() {
        let a = &changes.accounts;
        let tenants: Vec<&str> = a.iter().map(|a| a.tenant.as_str()).collect();
        let codes: Vec<&str> = a.iter().map(|a| a.unit.code()).collect();
        let scales: Vec<i16> = a.iter().map(|a| i16::from(a.unit.scale())).collect();
        let kinds: Vec<&str> = a.iter().map(|a| a.account.as_str()).collect();
        let deltas: Vec<i64> = a.iter().map(|a| a.delta).collect();
        let n = execute(
            tx,
            "INSERT INTO system_accounts (tenant, unit_code, unit_scale, kind, balance) \
             SELECT tenant, unit_code, unit_scale, kind, balance \
             FROM unnest($1::text[], $2::text[], $3::int2[], $4::text[], $5::int8[]) \
             WITH ORDINALITY AS u (tenant, unit_code, unit_scale, kind, balance, n) \
             ORDER BY n \
             ON CONFLICT (tenant, unit_code, unit_scale, kind) \
             DO UPDATE SET balance = system_accounts.balance + EXCLUDED.balance",
            &[&tenants, &codes, &scales, &kinds, &deltas],
        )
        .await?;
        all("system accounts", a.len(), n)?;
    }
    if !changes.mutations.is_empty() {
        write_mutations(tx, changes).await?;
    }
    write_settings(tx, changes).await
}

/// Inserts the settings the batch found absent (one inserted meanwhile breaks the
/// primary key, and the batch runs again) and updates the others.
async fn write_settings(tx: &Transaction<'_>, changes: &Changes) -> Result<(), Fail> {
    for created in [true, false] {
        let s: Vec<_> = changes
            .settings
            .iter()
            .filter(|s| s.created == created)
            .collect();
        if s.is_empty() {
            continue;
        }
        let tenants: Vec<&str> = s.iter().map(|s| s.tenant.as_str()).collect();
        let keys: Vec<&str> = s.iter().map(|s| s.key.as_str()).collect();
        let values: Vec<&str> = s.iter().map(|s| s.value.as_str()).collect();
        let updated: Vec<i64> = s.iter().map(|s| s.updated_at.as_micros()).collect();
        let sql = if created {
            "INSERT INTO settings (tenant, key, value, updated_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[])"
        } else {
            "UPDATE settings s SET value = u.value, updated_at = u.updated_at \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) \
             AS u (tenant, key, value, updated_at) \
             WHERE s.tenant = u.tenant AND s.key = u.key"
        };
        let n = execute(tx, sql, &[&tenants, &keys, &values, &updated]).await?;
        all("settings", s.len(), n)?;
    }
    Ok(())
}

/// Takes the next list cursors of each tenant, then inserts the mutations with them.
async fn write_mutations(tx: &Transaction<'_>, changes: &Changes) -> Result<(), Fail> {
    let m = &changes.mutations;
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for mutation in m {
        *counts.entry(mutation.tenant.as_str()).or_default() += 1;
    }
    let tenants: Vec<&str> = counts.keys().copied().collect();
    let numbers: Vec<i64> = counts.values().copied().collect();
    let statement = tx
        .prepare_cached(
            "UPDATE tenants t SET next_seq = t.next_seq + u.n \
             FROM unnest($1::text[], $2::int8[]) AS u (id, n) WHERE t.id = u.id \
             RETURNING t.id, t.next_seq - u.n",
        )
        .await?;
    let mut next: BTreeMap<String, i64> = BTreeMap::new();
    for row in tx.query(&statement, &[&tenants, &numbers]).await? {
        next.insert(crate::rows::get(&row, 0)?, crate::rows::get(&row, 1)?);
    }
    let mut seqs = Vec::with_capacity(m.len());
    for mutation in m {
        let Some(seq) = next.get_mut(mutation.tenant.as_str()) else {
            return Err(Fail::corrupt(format_args!(
                "tenant {} has no cursor row",
                mutation.tenant
            )));
        };
        seqs.push(*seq);
        *seq += 1;
    }
    let tenants: Vec<&str> = m.iter().map(|m| m.tenant.as_str()).collect();
    let ids: Vec<uuid::Uuid> = m.iter().map(|m| m.id.0).collect();
    let wallets: Vec<&str> = m.iter().map(|m| m.wallet.as_str()).collect();
    let customers: Vec<&str> = m.iter().map(|m| m.customer.as_str()).collect();
    let codes: Vec<&str> = m.iter().map(|m| m.unit.code()).collect();
    let scales: Vec<i16> = m.iter().map(|m| i16::from(m.unit.scale())).collect();
    let kinds: Vec<&str> = m.iter().map(|m| m.kind.as_str()).collect();
    let amounts: Vec<i64> = m.iter().map(|m| m.amount).collect();
    let after: Vec<i64> = m.iter().map(|m| m.balance_after).collect();
    let ref_kinds: Vec<&str> = m.iter().map(|m| m.reference.kind.as_str()).collect();
    let ref_texts: Vec<&str> = m.iter().map(|m| m.reference.text.as_str()).collect();
    let ref_links: Vec<&str> = m.iter().map(|m| m.reference.link.as_str()).collect();
    let holds: Vec<Option<uuid::Uuid>> = m.iter().map(|m| m.hold.map(|h| h.0)).collect();
    let transfers: Vec<Option<uuid::Uuid>> = m.iter().map(|m| m.transfer.map(|t| t.0)).collect();
    let counter: Vec<Option<&str>> = m
        .iter()
        .map(|m| m.counter_wallet.as_ref().map(WalletId::as_str))
        .collect();
    let occurred: Vec<i64> = m.iter().map(|m| m.occurred_at.as_micros()).collect();
    let recorded: Vec<i64> = m.iter().map(|m| m.recorded_at.as_micros()).collect();
    let n = execute(
        tx,
        "INSERT INTO mutations (tenant, seq, id, wallet, customer, unit_code, unit_scale, kind, \
         amount, balance_after, reference_kind, reference_text, reference_link, hold, transfer, \
         counter_wallet, occurred_at, recorded_at) \
         SELECT * FROM unnest($1::text[], $2::int8[], $3::uuid[], $4::text[], $5::text[], \
         $6::text[], $7::int2[], $8::text[], $9::int8[], $10::int8[], $11::text[], $12::text[], \
         $13::text[], $14::uuid[], $15::uuid[], $16::text[], $17::int8[], $18::int8[])",
        &[
            &tenants, &seqs, &ids, &wallets, &customers, &codes, &scales, &kinds, &amounts, &after,
            &ref_kinds, &ref_texts, &ref_links, &holds, &transfers, &counter, &occurred, &recorded,
        ],
    )
    .await?;
    all("mutations", m.len(), n)
}
