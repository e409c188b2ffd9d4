//! Searches with a filter, a total count and offset paging, for the dialects that page
//! by number; and the per-tenant settings.
//!
//! The statements are the shared ones of `prepaid_store::sql` (a filter compiles to a
//! condition over the columns of `prepaid_store::columns`); their values are bound as
//! this store keeps them: times as `BIGINT` microseconds, UUIDs as `uuid`, booleans as `boolean`. The
//! text of a search depends on the shape of its filter, which clients choose, so it is
//! prepared for each call rather than kept in the connection's statement cache.

use crate::error::Fail;
use crate::rows::{self, get};
use deadpool_postgres::Client;
use prepaid_ledger::{Mutation, SettingKey, TenantId, Wallet};
use prepaid_query::{Dialect, Value};
use prepaid_store::sql::{self, Search};
use prepaid_store::{Counted, MutationSearch, WalletSearch};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// A query value as this store keeps it.
pub(crate) fn param(value: Value) -> Param {
    match value {
        // The compiler writes null tests as `IS NULL`, never as a parameter; should one
        // come, a typed null compares like any other.
        Value::Null => Box::new(None::<String>),
        Value::Bool(b) => Box::new(b),
        Value::Int(i) | Value::Timestamp(i) => Box::new(i),
        Value::Text(s) => Box::new(s),
        Value::Uuid(u) => Box::new(u),
    }
}

/// Runs the count and the page of a search.
async fn counted<T>(
    client: &Client,
    search: &Search,
    decode: impl Fn(&Row) -> Result<T, Fail>,
) -> Result<Counted<T>, Fail> {
    let params: Vec<Param> = search.params.iter().cloned().map(param).collect();
    let mut refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let count = client.query_one(&search.count, refs.as_slice()).await?;
    let total = u64::try_from(get::<i64>(&count, 0)?).unwrap_or_default();
    if search.page_is_empty(total) {
        return Ok(Counted {
            items: Vec::new(),
            total,
        });
    }
    refs.push(&search.limit);
    refs.push(&search.offset);
    let items = client
        .query(&search.page, refs.as_slice())
        .await?
        .iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Counted { items, total })
}

pub(crate) async fn search_mutations(
    client: &Client,
    tenant: &TenantId,
    q: &MutationSearch,
) -> Result<Counted<Mutation>, Fail> {
    // A filter on a column the store does not offer is a dialect's bug.
    let search = sql::mutation_search(Dialect::Postgres, tenant, q).map_err(Fail::corrupt)?;
    counted(client, &search, |row| rows::mutation(row).map(|(_, m)| m)).await
}

pub(crate) async fn search_wallets(
    client: &Client,
    tenant: &TenantId,
    q: &WalletSearch,
) -> Result<Counted<Wallet>, Fail> {
    let search = sql::wallet_search(Dialect::Postgres, tenant, q).map_err(Fail::corrupt)?;
    counted(client, &search, rows::wallet).await
}

pub(crate) async fn setting(
    client: &Client,
    tenant: &TenantId,
    key: &SettingKey,
) -> Result<Option<String>, Fail> {
    let statement = client
        .prepare_cached("SELECT value FROM settings WHERE tenant = $1 AND key = $2")
        .await?;
    client
        .query_opt(&statement, &[&tenant.as_str(), &key.as_str()])
        .await?
        .map(|row| get(&row, 0))
        .transpose()
}
