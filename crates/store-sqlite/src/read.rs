//! The read path: lists and the invariant audit, run on the read connections.

use crate::error::Fail;
use crate::rows::{self, customer_columns};
use crate::search::Param;
use prepaid_ledger::{
    ApiKey, ApiKeyName, Customer, CustomerId, Hold, HoldId, Mutation, TenantId, Wallet, WalletId,
};
use prepaid_query::Dialect;
use prepaid_store::sql;
use prepaid_store::sql::audit::{self, Audit};
use prepaid_store::{
    Breach, GrantCursor, ListedGrant, ListedTenant, MutationQuery, PAGE_SIZE_MAX, Page,
    WalletAudit, WalletQuery,
};
use rusqlite::{Connection, Row, params, params_from_iter};

/// The number of rows to fetch for a page: the clamped limit plus one, which tells
/// whether another page follows. A limit of zero is taken as one, so that paging
/// always moves forward.
fn fetch_count(limit: usize) -> (usize, i64) {
    let limit = limit.clamp(1, PAGE_SIZE_MAX);
    (limit, i64::try_from(limit + 1).unwrap_or(i64::MAX))
}

/// Collects up to `limit` decoded rows and the cursor of the last one when more
/// follow.
fn page<T, C>(
    mut rows: rusqlite::Rows<'_>,
    limit: usize,
    decode: impl Fn(&Row<'_>) -> Result<T, Fail>,
    cursor: impl Fn(&T) -> C,
) -> Result<Page<T, C>, Fail> {
    let mut items = Vec::with_capacity(limit.min(64));
    while let Some(row) = rows.next()? {
        if items.len() == limit {
            let next = items.last().map(&cursor);
            return Ok(Page { items, next });
        }
        items.push(decode(row)?);
    }
    Ok(Page { items, next: None })
}

pub(crate) fn customers(
    conn: &Connection,
    tenant: &TenantId,
    after: Option<&CustomerId>,
    limit: usize,
) -> Result<Page<Customer, CustomerId>, Fail> {
    let (limit, fetch) = fetch_count(limit);
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        customer_columns!(),
        " FROM customers WHERE tenant = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
    ))?;
    let rows = stmt.query(params![
        tenant.as_str(),
        after.map_or("", CustomerId::as_str),
        fetch
    ])?;
    page(rows, limit, rows::customer, |c| c.id.clone())
}

pub(crate) fn tenants(
    conn: &Connection,
    after: Option<&TenantId>,
    limit: usize,
) -> Result<Page<ListedTenant, TenantId>, Fail> {
    let (limit, fetch) = fetch_count(limit);
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, operator, created_at FROM tenants WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query(params![after.map_or("", TenantId::as_str), fetch])?;
    page(rows, limit, rows::listed_tenant, |t| t.id.clone())
}

pub(crate) fn api_keys(
    conn: &Connection,
    tenant: &TenantId,
    after: Option<&ApiKeyName>,
    limit: usize,
) -> Result<Page<ApiKey, ApiKeyName>, Fail> {
    let (limit, fetch) = fetch_count(limit);
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        prepaid_store::api_key_columns!(),
        " FROM api_keys WHERE tenant = ?1 AND name > ?2 ORDER BY name LIMIT ?3"
    ))?;
    let rows = stmt.query(params![
        tenant.as_str(),
        after.map_or("", ApiKeyName::as_str),
        fetch
    ])?;
    page(rows, limit, rows::api_key, |k| k.name.clone())
}

/// Deletes a key and answers it as it was.
pub(crate) fn revoke_api_key(
    conn: &Connection,
    tenant: &TenantId,
    name: &ApiKeyName,
) -> Result<Option<ApiKey>, Fail> {
    let mut stmt = conn.prepare_cached(concat!(
        "DELETE FROM api_keys WHERE tenant = ?1 AND name = ?2 RETURNING ",
        prepaid_store::api_key_columns!()
    ))?;
    let mut rows = stmt.query(params![tenant.as_str(), name.as_str()])?;
    rows.next()?.map(rows::api_key).transpose()
}

pub(crate) fn wallets(
    conn: &Connection,
    tenant: &TenantId,
    query: &WalletQuery,
) -> Result<Page<Wallet, WalletId>, Fail> {
    let (limit, fetch) = fetch_count(query.limit);
    let list = sql::wallet_list(Dialect::Sqlite, tenant, query, fetch);
    let mut stmt = conn.prepare_cached(&list.text)?;
    let rows = stmt.query(params_from_iter(list.params.into_iter().map(Param)))?;
    page(rows, limit, rows::wallet, |w| w.id.clone())
}

pub(crate) fn wallet_holds(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &WalletId,
    after: Option<HoldId>,
    limit: usize,
) -> Result<Page<Hold, HoldId>, Fail> {
    let (limit, fetch) = fetch_count(limit);
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        prepaid_store::hold_columns!(),
        " FROM holds WHERE tenant = ?1 AND wallet = ?2 AND id > ?3 ORDER BY id LIMIT ?4"
    ))?;
    let after = after.map_or([0; 16], |h| *h.0.as_bytes());
    let rows = stmt.query(params![tenant.as_str(), wallet.as_str(), after, fetch])?;
    page(rows, limit, rows::hold, |h| h.id)
}

pub(crate) fn grants(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &WalletId,
    after: Option<GrantCursor>,
    limit: usize,
) -> Result<Page<ListedGrant, GrantCursor>, Fail> {
    let (limit, fetch) = fetch_count(limit);
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        prepaid_store::listed_grant_columns!(),
        " FROM grants INDEXED BY grants_by_wallet WHERE tenant = ?1 AND wallet = ?2 \
         AND (created_at, id) > (?3, ?4) \
         ORDER BY created_at, id LIMIT ?5"
    ))?;
    let (at, id) = after.map_or((i64::MIN, [0; 16]), |c| {
        (c.created_at.as_micros(), *c.id.0.as_bytes())
    });
    let rows = stmt.query(params![tenant.as_str(), wallet.as_str(), at, id, fetch])?;
    page(rows, limit, rows::listed_grant, |g| GrantCursor {
        created_at: g.grant.created_at,
        id: g.grant.id,
    })
}

pub(crate) fn mutations(
    conn: &Connection,
    tenant: &TenantId,
    query: &MutationQuery,
) -> Result<Page<Mutation, i64>, Fail> {
    let (limit, fetch) = fetch_count(query.limit);
    let list = sql::mutation_list(Dialect::Sqlite, tenant, query, fetch);
    let mut stmt = conn.prepare_cached(&list.text)?;
    let rows = stmt.query(params_from_iter(list.params.into_iter().map(Param)))?;
    let page = page(rows, limit, rows::mutation, |(seq, _)| *seq)?;
    Ok(Page {
        items: page.items.into_iter().map(|(_, m)| m).collect(),
        next: page.next,
    })
}

/// Audits every invariant on one snapshot of the database.
pub(crate) fn check_invariants(conn: &Connection) -> Result<Vec<Breach>, Fail> {
    conn.execute_batch("BEGIN")?;
    let result = audit(conn);
    if let Err(e) = conn.execute_batch("COMMIT") {
        tracing::warn!(error = %e, "ending the audit's read transaction failed");
    }
    result
}

fn audit(conn: &Connection) -> Result<Vec<Breach>, Fail> {
    let text = |row: &Row<'_>, i: usize| -> Result<String, Fail> {
        Ok(row.get_ref(i)?.as_str().map_err(Fail::corrupt)?.to_owned())
    };
    let mut found = Audit::default();
    let mut stmt = conn.prepare(audit::WALLETS)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        found.wallet(WalletAudit {
            tenant: rows::tenant_id(&text(row, 0)?)?,
            wallet: rows::wallet_id(&text(row, 1)?)?,
            balance: row.get(2)?,
            held: row.get(3)?,
            floor: row.get(4)?,
            mutations_sum: row.get(5)?,
            debit_holds_sum: row.get(6)?,
            corrected_down: row.get(7)?,
            incoming: row.get(8)?,
            credit_holds_sum: row.get(9)?,
        });
    }
    drop(rows);
    let mut stmt = conn.prepare(audit::BELOW_FLOOR)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        found.below_floor(
            rows::tenant_id(&text(row, 0)?)?,
            rows::wallet_id(&text(row, 1)?)?,
            row.get(2)?,
        );
    }
    drop(rows);
    let mut stmt = conn.prepare(audit::GRANTS)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        found.grants(
            rows::tenant_id(&text(row, 0)?)?,
            rows::wallet_id(&text(row, 1)?)?,
            (row.get(2)?, row.get(3)?),
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
        );
    }
    drop(rows);
    for table in audit::BALANCES {
        let mut stmt = conn.prepare(table)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            found.balance(row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        }
    }
    found.finish().map_err(Fail::corrupt)
}
