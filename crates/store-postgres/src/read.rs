//! The read path: single rows, lists and the invariant audit.

use crate::error::Fail;
use crate::rows::{
    self, API_KEY_COLUMNS, CUSTOMER_COLUMNS, HOLD_COLUMNS, LISTED_GRANT_COLUMNS, MUTATION_COLUMNS,
    WALLET_COLUMNS, get,
};
use crate::search::{Param, param};
use deadpool_postgres::{Client, GenericClient};
use prepaid_ledger::{
    ApiKey, ApiKeyName, Customer, CustomerId, Hold, HoldId, Mutation, MutationId, TenantId, Wallet,
    WalletId,
};
use prepaid_query::Dialect;
use prepaid_store::sql;
use prepaid_store::sql::audit::{self, Audit};
use prepaid_store::{
    Breach, GrantCursor, ListedGrant, ListedTenant, MutationQuery, PAGE_SIZE_MAX, Page,
    WalletAudit, WalletQuery,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

async fn query(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Fail> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

async fn one<T>(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    decode: impl FnOnce(&Row) -> Result<T, Fail>,
) -> Result<Option<T>, Fail> {
    query(client, sql, params)
        .await?
        .first()
        .map(decode)
        .transpose()
}

/// Runs a list's statement. Its text depends only on which filters it has, so the
/// connection's statement cache keeps a few shapes of it.
async fn list(client: &Client, list: sql::List) -> Result<Vec<Row>, Fail> {
    let params: Vec<Param> = list.params.into_iter().map(param).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    query(client, &list.text, &refs).await
}

/// The number of rows to fetch for a page: the clamped limit plus one, which tells
/// whether another page follows. A limit of zero is taken as one, so that paging
/// always moves forward.
fn fetch_count(limit: usize) -> (usize, i64) {
    let limit = limit.clamp(1, PAGE_SIZE_MAX);
    (limit, i64::try_from(limit + 1).unwrap_or(i64::MAX))
}

fn page<T, C>(
    rows: &[Row],
    limit: usize,
    decode: impl Fn(&Row) -> Result<T, Fail>,
    cursor: impl Fn(&T) -> C,
) -> Result<Page<T, C>, Fail> {
    let mut items = rows
        .iter()
        .take(limit)
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    let next = (rows.len() > limit)
        .then(|| items.last().map(&cursor))
        .flatten();
    items.shrink_to_fit();
    Ok(Page { items, next })
}

pub(crate) async fn api_key_by_hash(
    client: &Client,
    secret_sha256: &[u8; 32],
) -> Result<Option<ApiKey>, Fail> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = $1");
    one(client, &sql, &[&secret_sha256.as_slice()], rows::api_key).await
}

pub(crate) async fn customer(
    client: &Client,
    tenant: &TenantId,
    id: &CustomerId,
) -> Result<Option<Customer>, Fail> {
    let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE tenant = $1 AND id = $2");
    one(
        client,
        &sql,
        &[&tenant.as_str(), &id.as_str()],
        rows::customer,
    )
    .await
}

pub(crate) async fn tenants(
    client: &Client,
    after: Option<&TenantId>,
    limit: usize,
) -> Result<Page<ListedTenant, TenantId>, Fail> {
    let (limit, fetch) = fetch_count(limit);
    let sql = "SELECT id, name, operator, created_at FROM tenants WHERE id > $1 \
               ORDER BY id LIMIT $2";
    let after = after.map_or("", TenantId::as_str);
    let rows = query(client, sql, &[&after, &fetch]).await?;
    page(&rows, limit, rows::listed_tenant, |t| t.id.clone())
}

pub(crate) async fn api_keys(
    client: &Client,
    tenant: &TenantId,
    after: Option<&ApiKeyName>,
    limit: usize,
) -> Result<Page<ApiKey, ApiKeyName>, Fail> {
    let (limit, fetch) = fetch_count(limit);
    let sql = format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE tenant = $1 AND name > $2 \
         ORDER BY name LIMIT $3"
    );
    let after = after.map_or("", ApiKeyName::as_str);
    let rows = query(client, &sql, &[&tenant.as_str(), &after, &fetch]).await?;
    page(&rows, limit, rows::api_key, |k| k.name.clone())
}

/// Deletes a key and answers it as it was.
pub(crate) async fn revoke_api_key(
    client: &Client,
    tenant: &TenantId,
    name: &ApiKeyName,
) -> Result<Option<ApiKey>, Fail> {
    let sql =
        format!("DELETE FROM api_keys WHERE tenant = $1 AND name = $2 RETURNING {API_KEY_COLUMNS}");
    one(
        client,
        &sql,
        &[&tenant.as_str(), &name.as_str()],
        rows::api_key,
    )
    .await
}

pub(crate) async fn customers(
    client: &Client,
    tenant: &TenantId,
    after: Option<&CustomerId>,
    limit: usize,
) -> Result<Page<Customer, CustomerId>, Fail> {
    let (limit, fetch) = fetch_count(limit);
    let sql = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE tenant = $1 AND id > $2 \
         ORDER BY id LIMIT $3"
    );
    let after = after.map_or("", CustomerId::as_str);
    let rows = query(client, &sql, &[&tenant.as_str(), &after, &fetch]).await?;
    page(&rows, limit, rows::customer, |c| c.id.clone())
}

pub(crate) async fn wallet_holds(
    client: &Client,
    tenant: &TenantId,
    wallet: &WalletId,
    after: Option<HoldId>,
    limit: usize,
) -> Result<Page<Hold, HoldId>, Fail> {
    let (limit, fetch) = fetch_count(limit);
    let sql = format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE tenant = $1 AND wallet = $2 AND id > $3 \
         ORDER BY id LIMIT $4"
    );
    let after = after.map_or(uuid::Uuid::nil(), |h| h.0);
    let rows = query(
        client,
        &sql,
        &[&tenant.as_str(), &wallet.as_str(), &after, &fetch],
    )
    .await?;
    page(&rows, limit, rows::hold, |h| h.id)
}

pub(crate) async fn grants(
    client: &Client,
    tenant: &TenantId,
    wallet: &WalletId,
    after: Option<GrantCursor>,
    limit: usize,
) -> Result<Page<ListedGrant, GrantCursor>, Fail> {
    let (limit, fetch) = fetch_count(limit);
    let sql = format!(
        "SELECT {LISTED_GRANT_COLUMNS} FROM grants WHERE tenant = $1 AND wallet = $2 \
         AND (created_at, id) > ($3, $4) ORDER BY created_at, id LIMIT $5"
    );
    let (at, id) = after.map_or((i64::MIN, uuid::Uuid::nil()), |c| {
        (c.created_at.as_micros(), c.id.0)
    });
    let rows = query(
        client,
        &sql,
        &[&tenant.as_str(), &wallet.as_str(), &at, &id, &fetch],
    )
    .await?;
    page(&rows, limit, rows::listed_grant, |g| GrantCursor {
        created_at: g.grant.created_at,
        id: g.grant.id,
    })
}

pub(crate) async fn wallet(
    client: &Client,
    tenant: &TenantId,
    id: &WalletId,
) -> Result<Option<Wallet>, Fail> {
    let sql = format!("SELECT {WALLET_COLUMNS} FROM wallets WHERE tenant = $1 AND id = $2");
    one(
        client,
        &sql,
        &[&tenant.as_str(), &id.as_str()],
        rows::wallet,
    )
    .await
}

pub(crate) async fn wallets(
    client: &Client,
    tenant: &TenantId,
    q: &WalletQuery,
) -> Result<Page<Wallet, WalletId>, Fail> {
    let (limit, fetch) = fetch_count(q.limit);
    let rows = list(
        client,
        sql::wallet_list(Dialect::Postgres, tenant, q, fetch),
    )
    .await?;
    page(&rows, limit, rows::wallet, |w| w.id.clone())
}

pub(crate) async fn mutation(
    client: &Client,
    tenant: &TenantId,
    id: MutationId,
) -> Result<Option<Mutation>, Fail> {
    let sql = format!("SELECT {MUTATION_COLUMNS} FROM mutations WHERE id = $1 AND tenant = $2");
    one(client, &sql, &[&id.0, &tenant.as_str()], |r| {
        rows::mutation(r).map(|(_, m)| m)
    })
    .await
}

pub(crate) async fn mutations(
    client: &Client,
    tenant: &TenantId,
    q: &MutationQuery,
) -> Result<Page<Mutation, i64>, Fail> {
    let (limit, fetch) = fetch_count(q.limit);
    let rows = list(
        client,
        sql::mutation_list(Dialect::Postgres, tenant, q, fetch),
    )
    .await?;
    let page = page(&rows, limit, rows::mutation, |(seq, _)| *seq)?;
    Ok(Page {
        items: page.items.into_iter().map(|(_, m)| m).collect(),
        next: page.next,
    })
}

pub(crate) async fn hold(
    client: &Client,
    tenant: &TenantId,
    id: HoldId,
) -> Result<Option<Hold>, Fail> {
    let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1 AND tenant = $2");
    one(client, &sql, &[&id.0, &tenant.as_str()], rows::hold).await
}

/// Audits every invariant on one snapshot of the database.
pub(crate) async fn check_invariants(client: &mut Client) -> Result<Vec<Breach>, Fail> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let mut found = Audit::default();
    for row in &tx.query(audit::WALLETS, &[]).await? {
        found.wallet(WalletAudit {
            tenant: rows::tenant_id(get(row, 0)?)?,
            wallet: rows::wallet_id(get(row, 1)?)?,
            balance: get(row, 2)?,
            held: get(row, 3)?,
            floor: get(row, 4)?,
            mutations_sum: get(row, 5)?,
            debit_holds_sum: get(row, 6)?,
            corrected_down: get(row, 7)?,
            incoming: get(row, 8)?,
            credit_holds_sum: get(row, 9)?,
        });
    }
    for row in &tx.query(audit::BELOW_FLOOR, &[]).await? {
        found.below_floor(
            rows::tenant_id(get(row, 0)?)?,
            rows::wallet_id(get(row, 1)?)?,
            get(row, 2)?,
        );
    }
    for row in &tx.query(audit::GRANTS, &[]).await? {
        found.grants(
            rows::tenant_id(get(row, 0)?)?,
            rows::wallet_id(get(row, 1)?)?,
            (get(row, 2)?, get(row, 3)?),
            get(row, 4)?,
            get(row, 5)?,
            get(row, 6)?,
        );
    }
    for table in audit::BALANCES {
        for row in &tx.query(table, &[]).await? {
            let scale: i16 = get(row, 2)?;
            found.balance(get(row, 0)?, get(row, 1)?, i64::from(scale), get(row, 3)?);
        }
    }
    tx.commit().await?;
    found.finish().map_err(Fail::corrupt)
}
