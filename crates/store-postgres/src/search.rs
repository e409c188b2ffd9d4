//! Searches with a filter, a total count and offset paging, for the dialects that page
//! by number; and the per-tenant settings.
//!
//! A filter compiles to a condition over the columns of `prepaid_store::columns` (the
//! mutations table aliased `m`, wallets `w`); its values are bound as this store keeps
//! them: times as `BIGINT` microseconds, UUIDs as `uuid`, booleans as `boolean`. The
//! text of a search depends on the shape of its filter, which clients choose, so it is
//! prepared for each call rather than kept in the connection's statement cache.

use crate::error::Fail;
use crate::rows::{self, MUTATION_COLUMNS, WALLET_COLUMNS, get};
use deadpool_postgres::Client;
use prepaid_ledger::{Mutation, SettingKey, TenantId, Wallet};
use prepaid_query::{Dialect, Filter, Value};
use prepaid_store::{Counted, MutationSearch, Order, PAGE_SIZE_MAX, WalletSearch};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

type Param = Box<dyn ToSql + Sync + Send>;

/// A query value as this store keeps it.
fn param(value: Value) -> Param {
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

/// The `WHERE` condition of a search and its parameters, numbered from 1.
struct Condition {
    text: String,
    params: Vec<Param>,
}

impl Condition {
    fn new(tenant_column: &str, tenant: &TenantId) -> Self {
        Self {
            text: format!("{tenant_column} = $1"),
            params: vec![Box::new(tenant.as_str().to_owned())],
        }
    }

    fn equals(&mut self, column: &str, value: &str) {
        self.params.push(Box::new(value.to_owned()));
        self.text
            .push_str(&format!(" AND {column} = ${}", self.params.len()));
    }

    fn filter(&mut self, filter: Option<&Filter>) -> Result<(), Fail> {
        if let Some(filter) = filter {
            // A filter on a column the store does not offer is a dialect's bug.
            let sql =
                prepaid_store::columns::to_sql(filter, Dialect::Postgres, self.params.len() + 1)
                    .map_err(Fail::corrupt)?;
            self.text.push_str(" AND ");
            self.text.push_str(&sql.text);
            self.params.extend(sql.params.into_iter().map(param));
        }
        Ok(())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
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
async fn counted<T>(
    client: &Client,
    select: &Select<'_>,
    condition: &Condition,
    (offset, limit): (u64, usize),
    decode: impl Fn(&Row) -> Result<T, Fail>,
) -> Result<Counted<T>, Fail> {
    let Select {
        columns,
        from_where,
        order_by,
    } = select;
    let count = client
        .query_one(
            &format!("SELECT COUNT(*) {from_where}"),
            condition.refs().as_slice(),
        )
        .await?;
    let total = u64::try_from(get::<i64>(&count, 0)?).unwrap_or_default();
    let limit = limit.min(PAGE_SIZE_MAX);
    if limit == 0 || offset >= total {
        return Ok(Counted {
            items: Vec::new(),
            total,
        });
    }
    let n = condition.params.len();
    let sql = format!(
        "SELECT {columns} {from_where} ORDER BY {order_by} LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let mut refs = condition.refs();
    refs.push(&limit);
    refs.push(&offset);
    let items = client
        .query(&sql, refs.as_slice())
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
    let mut condition = Condition::new("m.tenant", tenant);
    if let Some(customer) = &q.customer {
        condition.equals("m.customer", customer.as_str());
    }
    if let Some(wallet) = &q.wallet {
        condition.equals("m.wallet", wallet.as_str());
    }
    condition.filter(q.filter.as_ref())?;
    let select = Select {
        columns: MUTATION_COLUMNS,
        from_where: format!("FROM mutations m WHERE {}", condition.text),
        order_by: format!("m.seq {}", direction(q.order)),
    };
    counted(client, &select, &condition, (q.offset, q.limit), |row| {
        rows::mutation(row).map(|(_, m)| m)
    })
    .await
}

pub(crate) async fn search_wallets(
    client: &Client,
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
        columns: WALLET_COLUMNS,
        from_where: format!("FROM wallets w WHERE {}", condition.text),
        order_by: format!("w.created_at {dir}, w.id {dir}"),
    };
    counted(
        client,
        &select,
        &condition,
        (q.offset, q.limit),
        rows::wallet,
    )
    .await
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
