//! Searches with a filter, a total count and offset paging, for the dialects that page
//! by number; and the per-tenant settings.
//!
//! The statements are the shared ones of `prepaid_store::sql` (a filter compiles to a
//! condition over the columns of `prepaid_store::columns`); their values are bound as
//! this store keeps them: times as integer microseconds, UUIDs as 16-byte blobs,
//! booleans as 0 and 1.

use crate::error::Fail;
use crate::rows;
use prepaid_ledger::{Mutation, SettingKey, TenantId, Wallet};
use prepaid_query::{Dialect, Value};
use prepaid_store::sql::{self, Search};
use prepaid_store::{Counted, MutationSearch, WalletSearch};
use rusqlite::types::{ToSqlOutput, Value as SqlValue};
use rusqlite::{Connection, ToSql, params};

/// A query value as SQLite stores it.
pub(crate) struct Param(pub(crate) Value);

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Owned(match &self.0 {
            Value::Null => SqlValue::Null,
            Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
            Value::Int(i) | Value::Timestamp(i) => SqlValue::Integer(*i),
            Value::Text(s) => SqlValue::Text(s.clone()),
            Value::Uuid(u) => SqlValue::Blob(u.as_bytes().to_vec()),
        }))
    }
}

/// Runs the count and the page of a search.
fn counted<T>(
    conn: &Connection,
    search: &Search,
    decode: impl Fn(&rusqlite::Row<'_>) -> Result<T, Fail>,
) -> Result<Counted<T>, Fail> {
    let params: Vec<Param> = search.params.iter().cloned().map(Param).collect();
    let mut refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
    let total: i64 = conn
        .prepare_cached(&search.count)?
        .query_row(refs.as_slice(), |r| r.get(0))?;
    let total = u64::try_from(total).unwrap_or_default();
    if search.page_is_empty(total) {
        return Ok(Counted {
            items: Vec::new(),
            total,
        });
    }
    refs.push(&search.limit);
    refs.push(&search.offset);
    let mut stmt = conn.prepare_cached(&search.page)?;
    let mut rows = stmt.query(refs.as_slice())?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(decode(row)?);
    }
    Ok(Counted { items, total })
}

pub(crate) fn search_mutations(
    conn: &Connection,
    tenant: &TenantId,
    q: &MutationSearch,
) -> Result<Counted<Mutation>, Fail> {
    // A filter on a column the store does not offer is a dialect's bug.
    let search = sql::mutation_search(Dialect::Sqlite, tenant, q).map_err(Fail::corrupt)?;
    counted(conn, &search, |row| rows::mutation(row).map(|(_, m)| m))
}

pub(crate) fn search_wallets(
    conn: &Connection,
    tenant: &TenantId,
    q: &WalletSearch,
) -> Result<Counted<Wallet>, Fail> {
    let search = sql::wallet_search(Dialect::Sqlite, tenant, q).map_err(Fail::corrupt)?;
    counted(conn, &search, rows::wallet)
}

pub(crate) fn setting(
    conn: &Connection,
    tenant: &TenantId,
    key: &SettingKey,
) -> Result<Option<String>, Fail> {
    let mut stmt =
        conn.prepare_cached("SELECT value FROM settings WHERE tenant = ?1 AND key = ?2")?;
    let mut rows = stmt.query(params![tenant.as_str(), key.as_str()])?;
    match rows.next()? {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}
