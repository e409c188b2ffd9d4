//! Searches with a filter, a total count and offset paging, for the dialects that page
//! by number; and the per-tenant settings.
//!
//! A filter compiles to a condition over the columns of `prepaid_store::columns` (the
//! mutations table aliased `m`, wallets `w`); its values are bound as this store keeps
//! them: times as integer microseconds, UUIDs as 16-byte blobs, booleans as 0 and 1.

use crate::error::Fail;
use crate::rows::{self, mutation_columns, wallet_columns};
use prepaid_ledger::{Mutation, SettingKey, TenantId, Wallet};
use prepaid_query::{Dialect, Value};
use prepaid_store::{Counted, MutationSearch, Order, PAGE_SIZE_MAX, WalletSearch};
use rusqlite::types::{ToSqlOutput, Value as SqlValue};
use rusqlite::{Connection, ToSql, params};

/// A query value as SQLite stores it.
struct Param(Value);

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

/// The `WHERE` condition of a search and its parameters, numbered from 1.
struct Condition {
    text: String,
    params: Vec<Param>,
}

impl Condition {
    fn new(tenant_column: &str, tenant: &TenantId) -> Self {
        Self {
            text: format!("{tenant_column} = ?1"),
            params: vec![Param(Value::Text(tenant.as_str().to_owned()))],
        }
    }

    fn equals(&mut self, column: &str, value: &str) {
        self.params.push(Param(Value::Text(value.to_owned())));
        self.text
            .push_str(&format!(" AND {column} = ?{}", self.params.len()));
    }

    fn filter(&mut self, filter: Option<&prepaid_query::Filter>) -> Result<(), Fail> {
        if let Some(filter) = filter {
            // A filter on a column the store does not offer is a dialect's bug.
            let sql =
                prepaid_store::columns::to_sql(filter, Dialect::Sqlite, self.params.len() + 1)
                    .map_err(Fail::corrupt)?;
            self.text.push_str(" AND ");
            self.text.push_str(&sql.text);
            self.params.extend(sql.params.into_iter().map(Param));
        }
        Ok(())
    }

    fn refs(&self) -> Vec<&dyn ToSql> {
        self.params.iter().map(|p| p as &dyn ToSql).collect()
    }
}

fn direction(order: Order) -> &'static str {
    match order {
        Order::Ascending => "ASC",
        Order::Descending => "DESC",
    }
}

/// What a search selects: its columns, its `FROM ... WHERE ...` and its order.
struct Select<'a> {
    columns: &'a str,
    from_where: String,
    order_by: String,
}

/// Runs the count and the page of a search.
fn counted<T>(
    conn: &Connection,
    select: &Select<'_>,
    condition: &Condition,
    (offset, limit): (u64, usize),
    decode: impl Fn(&rusqlite::Row<'_>) -> Result<T, Fail>,
) -> Result<Counted<T>, Fail> {
    let Select {
        columns,
        from_where,
        order_by,
    } = select;
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) {from_where}"))?
        .query_row(condition.refs().as_slice(), |r| r.get(0))?;
    let total = u64::try_from(total).unwrap_or_default();
    let limit = limit.min(PAGE_SIZE_MAX);
    if limit == 0 || offset >= total {
        return Ok(Counted {
            items: Vec::new(),
            total,
        });
    }
    let n = condition.params.len();
    let sql = format!(
        "SELECT {columns} {from_where} ORDER BY {order_by} LIMIT ?{} OFFSET ?{}",
        n + 1,
        n + 2
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let mut refs = condition.refs();
    refs.push(&limit);
    refs.push(&offset);
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
    let mut condition = Condition::new("m.tenant", tenant);
    if let Some(customer) = &q.customer {
        condition.equals("m.customer", customer.as_str());
    }
    if let Some(wallet) = &q.wallet {
        condition.equals("m.wallet", wallet.as_str());
    }
    condition.filter(q.filter.as_ref())?;
    let select = Select {
        columns: mutation_columns!(),
        from_where: format!("FROM mutations m WHERE {}", condition.text),
        order_by: format!("m.seq {}", direction(q.order)),
    };
    counted(conn, &select, &condition, (q.offset, q.limit), |row| {
        rows::mutation(row).map(|(_, m)| m)
    })
}

pub(crate) fn search_wallets(
    conn: &Connection,
    tenant: &TenantId,
    q: &WalletSearch,
) -> Result<Counted<Wallet>, Fail> {
    let mut condition = Condition::new("w.tenant", tenant);
    if let Some(customer) = &q.customer {
        condition.equals("w.customer", customer.as_str());
    }
    condition.filter(q.filter.as_ref())?;
    let dir = direction(q.order);
    let select = Select {
        columns: wallet_columns!(),
        from_where: format!("FROM wallets w WHERE {}", condition.text),
        order_by: format!("w.created_at {dir}, w.id {dir}"),
    };
    counted(conn, &select, &condition, (q.offset, q.limit), rows::wallet)
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
