//! The SQL both backends share: the column lists their row decoders read, the text of
//! a page of a list (mutations, wallets, filtered by metadata) and of a filtered,
//! counted search with their parameters, how draws and metadata are kept as text,
//! which migrations a schema lacks, and how a stored id that no longer parses is
//! reported. Each backend binds the
//! parameters and decodes the rows in its own way; what the statements say is here,
//! once, with each backend's placeholders ([`Dialect::placeholder`]).

use crate::{
    MetadataFilter, MutationQuery, MutationSearch, MutationSort, Order, PAGE_SIZE_MAX, WalletQuery,
    WalletSearch,
};
use prepaid_ledger::{Draw, Metadata, MutationId, TenantId};
use prepaid_query::{Dialect, Value};
use std::ops::Range;

/// The columns a backend's wallet decoder reads, in order.
#[macro_export]
macro_rules! wallet_columns {
    () => {
        "tenant, id, customer, unit_code, unit_scale, name, product, status, floor, \
         valid_from, valid_until, balance, held, created_at, updated_at, ceiling, incoming, \
         metadata"
    };
}

/// The columns a backend's mutation decoder reads, in order (its cursor first).
#[macro_export]
macro_rules! mutation_columns {
    () => {
        "seq, id, tenant, wallet, customer, unit_code, unit_scale, kind, amount, \
         balance_after, reference_kind, reference_text, reference_link, hold, transfer, \
         counter_wallet, occurred_at, recorded_at, drawn, reverses, metadata"
    };
}

/// The columns a backend's hold decoder reads, in order.
#[macro_export]
macro_rules! hold_columns {
    () => {
        "tenant, id, wallet, customer, amount, committed_amount, status, reference_kind, \
         reference_text, reference_link, expires_at, created_at, settled_at, direction, \
         reserved, metadata"
    };
}

/// The columns a backend's grant decoder reads, in order.
#[macro_export]
macro_rules! grant_columns {
    () => {
        "id, amount, remaining, held, priority, category, expires_at, created_at"
    };
}

/// The columns a backend's decoder of a listed grant reads, in order, from the grants
/// table unaliased: [`grant_columns!`] and the metadata of the mutation that made the
/// grant (`{}` for a grant whose mutation is gone, which no store makes).
#[macro_export]
macro_rules! listed_grant_columns {
    () => {
        concat!(
            $crate::grant_columns!(),
            ", COALESCE((SELECT m.metadata FROM mutations m \
             WHERE m.tenant = grants.tenant AND m.id = grants.id), '{}')"
        )
    };
}

/// The columns a backend's API key decoder reads, in order.
#[macro_export]
macro_rules! api_key_columns {
    () => {
        "tenant, name, secret_sha256, scope_read, scope_write, scope_admin, customer, created_at"
    };
}

/// The columns a backend's customer decoder reads, in order.
#[macro_export]
macro_rules! customer_columns {
    () => {
        "tenant, id, name, created_at, link"
    };
}

/// A search as statements: the count, the page, and the parameters of its condition
/// (the page's limit and offset follow them, as the last two parameters).
#[derive(Clone, Debug, PartialEq)]
pub struct Search {
    /// `SELECT COUNT(*) FROM ... WHERE ...`.
    pub count: String,
    /// `SELECT <columns> FROM ... WHERE ... ORDER BY ... LIMIT <n+1> OFFSET <n+2>`.
    pub page: String,
    /// The values of the condition's placeholders, numbered from 1.
    pub params: Vec<Value>,
    /// At most [`PAGE_SIZE_MAX`]; 0 means the page is not worth reading.
    pub limit: i64,
    pub offset: i64,
    /// The offset as asked, to compare with the count: a page past the end is empty.
    pub offset_asked: u64,
}

impl Search {
    /// Whether the page can hold anything, given the count.
    pub fn page_is_empty(&self, total: u64) -> bool {
        self.limit == 0 || self.offset_asked >= total
    }
}

/// The `WHERE` condition of a search and its parameters, numbered from 1.
struct Condition {
    dialect: Dialect,
    text: String,
    params: Vec<Value>,
}

impl Condition {
    fn new(dialect: Dialect, tenant_column: &str, tenant: &TenantId) -> Self {
        Self {
            dialect,
            text: format!("{tenant_column} = {}", dialect.placeholder(1)),
            params: vec![Value::Text(tenant.as_str().to_owned())],
        }
    }

    fn equals(&mut self, column: &str, value: &str) {
        self.compare(column, "=", Value::Text(value.to_owned()));
    }

    fn compare(&mut self, column: &str, operator: &str, value: Value) {
        self.params.push(value);
        let at = self.dialect.placeholder(self.params.len());
        self.text
            .push_str(&format!(" AND {column} {operator} {at}"));
    }

    /// A test of each pair of `filter` against the JSON object in `column`. Keys and
    /// values are parameters; a key is put into SQLite's JSON path as a quoted label,
    /// which a valid key (no `"` or `\`) cannot break out of.
    fn metadata(&mut self, column: &str, filter: &MetadataFilter) {
        for (key, value) in filter.iter() {
            let key = match self.dialect {
                Dialect::Sqlite => format!("$.\"{key}\""),
                Dialect::Postgres => key.to_owned(),
            };
            self.params.push(Value::Text(key));
            let k = self.dialect.placeholder(self.params.len());
            self.params.push(Value::Text(value.to_owned()));
            let v = self.dialect.placeholder(self.params.len());
            self.text.push_str(&match self.dialect {
                Dialect::Sqlite => format!(" AND json_extract({column}, {k}) = {v}"),
                Dialect::Postgres => format!(" AND ({column}::jsonb ->> {k}) = {v}"),
            });
        }
    }

    /// A filter on a column the store does not offer is a dialect's bug, answered with
    /// the compiler's message.
    fn filter(&mut self, filter: Option<&prepaid_query::Filter>) -> Result<(), String> {
        if let Some(filter) = filter {
            let sql = crate::columns::to_sql(filter, self.dialect, self.params.len() + 1)
                .map_err(|e| e.to_string())?;
            self.text.push_str(" AND ");
            self.text.push_str(&sql.text);
            self.params.extend(sql.params);
        }
        Ok(())
    }

    fn into_search(
        self,
        columns: &str,
        from: &str,
        order_by: &str,
        (offset, limit): (u64, usize),
    ) -> Search {
        let from_where = format!("FROM {from} WHERE {}", self.text);
        let n = self.params.len();
        Search {
            count: format!("SELECT COUNT(*) {from_where}"),
            page: format!(
                "SELECT {columns} {from_where} ORDER BY {order_by} LIMIT {} OFFSET {}",
                self.dialect.placeholder(n + 1),
                self.dialect.placeholder(n + 2)
            ),
            params: self.params,
            limit: i64::try_from(limit.min(PAGE_SIZE_MAX)).unwrap_or(0),
            offset: i64::try_from(offset).unwrap_or(i64::MAX),
            offset_asked: offset,
        }
    }
}

/// A page of a list as one statement: `SELECT <columns> ... LIMIT <fetch>`, and the
/// values of its placeholders, numbered from 1 (the limit last).
#[derive(Clone, Debug, PartialEq)]
pub struct List {
    pub text: String,
    pub params: Vec<Value>,
}

impl Condition {
    fn into_list(mut self, columns: &str, from: &str, order_by: &str, fetch: i64) -> List {
        self.params.push(Value::Int(fetch));
        List {
            text: format!(
                "SELECT {columns} FROM {from} WHERE {} ORDER BY {order_by} LIMIT {}",
                self.text,
                self.dialect.placeholder(self.params.len())
            ),
            params: self.params,
        }
    }
}

/// The statement of a page of mutations (`MutationQuery`), `fetch` rows at most, in
/// commit order.
pub fn mutation_list(dialect: Dialect, tenant: &TenantId, q: &MutationQuery, fetch: i64) -> List {
    let mut condition = Condition::new(dialect, "tenant", tenant);
    if let Some(wallet) = &q.wallet {
        condition.equals("wallet", wallet.as_str());
    }
    if let Some(customer) = &q.customer {
        condition.equals("customer", customer.as_str());
    }
    condition.compare("seq", ">", Value::Int(q.after.unwrap_or(0)));
    if let Some(from) = q.recorded_from {
        condition.compare("recorded_at", ">=", Value::Int(from.as_micros()));
    }
    if let Some(before) = q.recorded_before {
        condition.compare("recorded_at", "<", Value::Int(before.as_micros()));
    }
    condition.metadata("metadata", &q.metadata);
    condition.into_list(mutation_columns!(), "mutations", "seq", fetch)
}

/// The statement of a page of wallets (`WalletQuery`), `fetch` rows at most, by id.
pub fn wallet_list(dialect: Dialect, tenant: &TenantId, q: &WalletQuery, fetch: i64) -> List {
    let mut condition = Condition::new(dialect, "tenant", tenant);
    if let Some(customer) = &q.customer {
        condition.equals("customer", customer.as_str());
    }
    let after = q.after.as_ref().map_or("", |a| a.as_str());
    condition.compare("id", ">", Value::Text(after.to_owned()));
    condition.metadata("metadata", &q.metadata);
    condition.into_list(wallet_columns!(), "wallets", "id", fetch)
}

fn direction(order: Order) -> &'static str {
    match order {
        Order::Ascending => "ASC",
        Order::Descending => "DESC",
    }
}

/// The statements of a mutation search of `tenant` (the mutations table aliased `m`).
pub fn mutation_search(
    dialect: Dialect,
    tenant: &TenantId,
    q: &MutationSearch,
) -> Result<Search, String> {
    let mut condition = Condition::new(dialect, "m.tenant", tenant);
    if let Some(customer) = &q.customer {
        condition.equals("m.customer", customer.as_str());
    }
    if let Some(wallet) = &q.wallet {
        condition.equals("m.wallet", wallet.as_str());
    }
    condition.filter(q.filter.as_ref())?;
    let dir = direction(q.order);
    let order_by = match q.sort {
        MutationSort::Recorded => format!("m.seq {dir}"),
        MutationSort::Occurred => format!("m.occurred_at {dir}, m.seq {dir}"),
    };
    Ok(condition.into_search(
        mutation_columns!(),
        "mutations m",
        &order_by,
        (q.offset, q.limit),
    ))
}

/// The statements of a wallet search of `tenant` (the wallets table aliased `w`).
pub fn wallet_search(
    dialect: Dialect,
    tenant: &TenantId,
    q: &WalletSearch,
) -> Result<Search, String> {
    let mut condition = Condition::new(dialect, "w.tenant", tenant);
    if let Some(customer) = &q.customer {
        condition.equals("w.customer", customer.as_str());
    }
    condition.filter(q.filter.as_ref())?;
    let dir = direction(q.order);
    Ok(condition.into_search(
        wallet_columns!(),
        "wallets w",
        &format!("w.created_at {dir}, w.id {dir}"),
        (q.offset, q.limit),
    ))
}

/// A schema newer than the migrations this build knows: the build must not touch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaTooNew {
    pub found: i64,
    pub known: usize,
}

/// The migrations a schema at version `found` lacks, as indexes into `migrations`
/// (step `i` makes version `i + 1`); a schema newer than them all is refused.
pub fn migrations_to_apply(migrations: &[&str], found: i64) -> Result<Range<usize>, SchemaTooNew> {
    let applied = usize::try_from(found).unwrap_or(usize::MAX);
    if applied > migrations.len() {
        return Err(SchemaTooNew {
            found,
            known: migrations.len(),
        });
    }
    Ok(applied..migrations.len())
}

/// Parses a stored id of kind `what`; the message of a failure says which and why, for
/// the backend to report as corrupt data.
pub fn stored_id<T, E: std::fmt::Display>(
    what: &str,
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, String> {
    parse(text).map_err(|e| format!("{what} {text:?}: {e}"))
}

/// A list of draws as the stores keep it: `<grant id, 32 hex digits>:<amount>` joined by
/// `,`, empty when there are none.
pub fn encode_draws(draws: &[Draw]) -> String {
    let mut text = String::with_capacity(draws.len() * 40);
    for (i, d) in draws.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&d.grant.0.simple().to_string());
        text.push(':');
        text.push_str(&d.amount.to_string());
    }
    text
}

/// The draws [`encode_draws`] wrote; what does not parse is said in the error.
pub fn decode_draws(text: &str) -> Result<Vec<Draw>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|part| {
            let bad = || format!("draws {text:?}");
            let (grant, amount) = part.split_once(':').ok_or_else(bad)?;
            Ok(Draw {
                grant: MutationId(uuid::Uuid::try_parse(grant).map_err(|_| bad())?),
                amount: amount.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// Metadata as the stores keep it: a JSON object of strings, `{}` when there are none.
pub fn encode_metadata(metadata: &Metadata) -> String {
    if metadata.is_empty() {
        return "{}".to_owned();
    }
    let map: serde_json::Map<String, serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// The metadata [`encode_metadata`] wrote; what does not parse, or is not valid
/// metadata, is said in the error.
pub fn decode_metadata(text: &str) -> Result<Metadata, String> {
    if text == "{}" {
        return Ok(Metadata::default());
    }
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_str(text).map_err(|e| format!("metadata {text:?}: {e}"))?;
    Metadata::new(map).map_err(|e| format!("metadata {text:?}: {e}"))
}

/// The statements of an audit, each read on one snapshot, and what they find. Plain
/// SQL that both databases run as it is.
pub mod audit {
    use crate::{Breach, WalletAudit};
    use prepaid_ledger::{TenantId, Unit, WalletId};
    use std::collections::BTreeMap;

    /// Every wallet with the sums its cached columns must equal: tenant, id, balance,
    /// held, floor, the sum of its mutations, of its pending debit holds, whether a
    /// correction (an adjustment or a reversal) ever took it down, incoming, and the sum of its pending credit holds.
    pub const WALLETS: &str = "SELECT w.tenant, w.id, w.balance, w.held, w.floor, \
         (SELECT CAST(COALESCE(SUM(m.amount), 0) AS BIGINT) FROM mutations m \
          WHERE m.tenant = w.tenant AND m.wallet = w.id), \
         (SELECT CAST(COALESCE(SUM(h.amount), 0) AS BIGINT) FROM holds h \
          WHERE h.tenant = w.tenant AND h.wallet = w.id AND h.status = 'pending' \
          AND h.direction = 'debit'), \
         EXISTS (SELECT 1 FROM mutations m WHERE m.tenant = w.tenant AND m.wallet = w.id \
          AND m.kind IN ('adjustment', 'reversal') AND m.amount < 0), \
         w.incoming, \
         (SELECT CAST(COALESCE(SUM(h.amount), 0) AS BIGINT) FROM holds h \
          WHERE h.tenant = w.tenant AND h.wallet = w.id AND h.status = 'pending' \
          AND h.direction = 'credit') \
         FROM wallets w ORDER BY w.tenant, w.id";

    /// Whatever corrections did, no debit and no outgoing transfer may ever have left
    /// a wallet below its floor (holds only add to what must stay above it): tenant,
    /// wallet, and the most negative such balance less the floor.
    pub const BELOW_FLOOR: &str = "SELECT m.tenant, m.wallet, MIN(m.balance_after - w.floor) \
         FROM mutations m JOIN wallets w ON w.tenant = m.tenant AND w.id = m.wallet \
         WHERE w.floor IS NOT NULL AND m.kind IN ('debit', 'transfer_out') \
         AND m.balance_after < w.floor \
         GROUP BY m.tenant, m.wallet ORDER BY m.tenant, m.wallet";

    /// Every wallet with grants beside what they add up to: tenant, wallet, balance,
    /// held, the sum of the grants' remainders, the sum of what they reserve, and the
    /// least of each grant's remainder less its reservation (and of its reservation).
    pub const GRANTS: &str = "SELECT w.tenant, w.id, w.balance, w.held, \
         CAST(COALESCE(SUM(g.remaining), 0) AS BIGINT), CAST(COALESCE(SUM(g.held), 0) AS BIGINT), \
         CAST(COALESCE(MIN(CASE WHEN g.held < 0 THEN g.held ELSE g.remaining - g.held END), 0) AS BIGINT) \
         FROM wallets w JOIN grants g ON g.tenant = w.tenant AND g.wallet = w.id \
         GROUP BY w.tenant, w.id, w.balance, w.held ORDER BY w.tenant, w.id";

    /// Every balance of every account, for the per-unit sums: tenant, unit code, unit
    /// scale, balance.
    pub const BALANCES: [&str; 2] = [
        "SELECT tenant, unit_code, unit_scale, balance FROM wallets",
        "SELECT tenant, unit_code, unit_scale, balance FROM system_accounts",
    ];

    /// What an audit found so far.
    #[derive(Default)]
    pub struct Audit {
        breaches: Vec<Breach>,
        // Summed in i128: the accounts of a unit sum to zero, but a running sum over
        // them may pass the bounds of i64 on the way.
        sums: BTreeMap<(String, String, i64), i128>,
    }

    impl Audit {
        /// A row of [`WALLETS`].
        pub fn wallet(&mut self, wallet: WalletAudit) {
            self.breaches.extend(wallet.breaches());
        }

        /// A row of [`BELOW_FLOOR`]; a wallet reported below its floor already is
        /// reported once.
        pub fn below_floor(&mut self, tenant: TenantId, wallet: WalletId, available: i64) {
            let known = self.breaches.iter().any(|b| {
                matches!(b, Breach::BelowFloor { tenant: t, wallet: w, .. }
                    if *t == tenant && *w == wallet)
            });
            if !known {
                self.breaches.push(Breach::BelowFloor {
                    tenant,
                    wallet,
                    available,
                });
            }
        }

        /// A row of [`GRANTS`]: a breach unless the grants cover the balance (the
        /// rest is debt, never credit), reserve no more than the wallet holds, and
        /// each has left at least what it reserves.
        #[allow(clippy::too_many_arguments)]
        pub fn grants(
            &mut self,
            tenant: TenantId,
            wallet: WalletId,
            (balance, held): (i64, i64),
            remaining: i64,
            reserved: i64,
            worst: i64,
        ) {
            if remaining < balance || reserved > held || worst < 0 {
                self.breaches.push(Breach::GrantsBroken {
                    tenant,
                    wallet,
                    balance,
                    remaining,
                    held,
                    reserved,
                    worst,
                });
            }
        }

        /// A row of [`BALANCES`].
        pub fn balance(&mut self, tenant: String, unit_code: String, scale: i64, balance: i64) {
            *self.sums.entry((tenant, unit_code, scale)).or_default() += i128::from(balance);
        }

        /// Every breach found, the units that do not sum to zero last; a tenant or unit
        /// that does not parse is said in the error, for the backend to report as
        /// corrupt data.
        pub fn finish(mut self) -> Result<Vec<Breach>, String> {
            for ((tenant, code, scale), sum) in self.sums {
                if sum == 0 {
                    continue;
                }
                let scale = u8::try_from(scale).map_err(|_| format!("unit scale {scale}"))?;
                self.breaches.push(Breach::UnitNotZero {
                    tenant: super::stored_id("tenant id", &tenant, TenantId::parse)?,
                    unit: Unit::new(&code, scale)
                        .map_err(|e| format!("unit {code:?}/{scale}: {e}"))?,
                    sum: i64::try_from(sum).unwrap_or(if sum < 0 { i64::MIN } else { i64::MAX }),
                });
            }
            Ok(self.breaches)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_keep_their_grants_amounts_and_order() {
        let draws = [
            Draw {
                grant: MutationId(uuid::Uuid::from_u128(2)),
                amount: 5,
            },
            Draw {
                grant: MutationId(uuid::Uuid::from_u128(1)),
                amount: -20,
            },
        ];
        let text = encode_draws(&draws);
        assert_eq!(decode_draws(&text).unwrap(), draws);
        assert_eq!(encode_draws(&[]), "");
        assert_eq!(decode_draws("").unwrap(), []);
        assert!(decode_draws("x:1").is_err());
        assert!(decode_draws("00000000000000000000000000000001").is_err());
    }
    use prepaid_ledger::{Timestamp, WalletId};

    fn tenant() -> TenantId {
        TenantId::parse("t1").unwrap()
    }

    #[test]
    fn searches_number_their_placeholders_per_backend() {
        let q = MutationSearch {
            wallet: Some(WalletId::parse("w1").unwrap()),
            offset: 40,
            limit: 20,
            ..MutationSearch::default()
        };
        let sqlite = mutation_search(Dialect::Sqlite, &tenant(), &q).unwrap();
        assert_eq!(
            sqlite.count,
            "SELECT COUNT(*) FROM mutations m WHERE m.tenant = ?1 AND m.wallet = ?2"
        );
        assert!(
            sqlite
                .page
                .ends_with("ORDER BY m.seq ASC LIMIT ?3 OFFSET ?4")
        );
        let pg = mutation_search(Dialect::Postgres, &tenant(), &q).unwrap();
        assert!(pg.page.ends_with("ORDER BY m.seq ASC LIMIT $3 OFFSET $4"));
        assert_eq!(
            pg.params,
            [Value::Text("t1".into()), Value::Text("w1".into())]
        );
        assert_eq!((pg.limit, pg.offset), (20, 40));
        assert!(!pg.page_is_empty(41) && pg.page_is_empty(40));
    }

    #[test]
    fn pages_are_bounded() {
        let q = WalletSearch {
            limit: PAGE_SIZE_MAX + 1,
            order: Order::Descending,
            ..WalletSearch::default()
        };
        let s = wallet_search(Dialect::Postgres, &tenant(), &q).unwrap();
        assert_eq!(s.limit, i64::try_from(PAGE_SIZE_MAX).unwrap());
        assert!(s.page.contains("ORDER BY w.created_at DESC, w.id DESC"));
    }

    #[test]
    fn metadata_round_trips_as_a_json_object() {
        let m = Metadata::new([("order", "A-17"), ("note", "\"quoted\" é")]).unwrap();
        let text = encode_metadata(&m);
        assert_eq!(text, r#"{"note":"\"quoted\" é","order":"A-17"}"#);
        assert_eq!(decode_metadata(&text).unwrap(), m);
        assert_eq!(encode_metadata(&Metadata::default()), "{}");
        assert_eq!(decode_metadata("{}").unwrap(), Metadata::default());
        assert!(decode_metadata(r#"{"a": 1}"#).is_err());
        assert!(decode_metadata(r#"{"a b": "1"}"#).is_err());
        assert!(decode_metadata("[]").is_err());
    }

    #[test]
    fn a_list_of_mutations_takes_a_range_of_recorded_times() {
        let q = MutationQuery {
            recorded_from: Some(Timestamp::from_micros(5)),
            recorded_before: Some(Timestamp::from_micros(9)),
            ..MutationQuery::default()
        };
        let pg = mutation_list(Dialect::Postgres, &tenant(), &q, 11);
        assert!(
            pg.text.ends_with(
                "WHERE tenant = $1 AND seq > $2 AND recorded_at >= $3 \
                 AND recorded_at < $4 ORDER BY seq LIMIT $5"
            ),
            "{}",
            pg.text
        );
        assert_eq!(pg.params[2..4], [Value::Int(5), Value::Int(9)]);
    }

    #[test]
    fn lists_bind_metadata_keys_and_values() {
        let filter = MetadataFilter::new(Metadata::new([("order", "A-17")]).unwrap()).unwrap();
        let q = MutationQuery {
            wallet: Some(WalletId::parse("w1").unwrap()),
            metadata: filter.clone(),
            after: Some(7),
            ..MutationQuery::default()
        };
        let sqlite = mutation_list(Dialect::Sqlite, &tenant(), &q, 11);
        assert!(
            sqlite.text.ends_with(
                "WHERE tenant = ?1 AND wallet = ?2 AND seq > ?3 \
                 AND json_extract(metadata, ?4) = ?5 ORDER BY seq LIMIT ?6"
            ),
            "{}",
            sqlite.text
        );
        assert_eq!(
            sqlite.params,
            [
                Value::Text("t1".into()),
                Value::Text("w1".into()),
                Value::Int(7),
                Value::Text("$.\"order\"".into()),
                Value::Text("A-17".into()),
                Value::Int(11)
            ]
        );
        let w = WalletQuery {
            metadata: filter,
            ..WalletQuery::default()
        };
        let pg = wallet_list(Dialect::Postgres, &tenant(), &w, 3);
        assert!(
            pg.text.ends_with(
                "WHERE tenant = $1 AND id > $2 AND (metadata::jsonb ->> $3) = $4 \
                 ORDER BY id LIMIT $5"
            ),
            "{}",
            pg.text
        );
        assert_eq!(pg.params[2], Value::Text("order".into()));
    }

    #[test]
    fn migrations_apply_from_the_version_found() {
        let steps = ["a", "b", "c"];
        assert_eq!(migrations_to_apply(&steps, 0), Ok(0..3));
        assert_eq!(migrations_to_apply(&steps, 2), Ok(2..3));
        assert_eq!(migrations_to_apply(&steps, 3), Ok(3..3));
        assert_eq!(
            migrations_to_apply(&steps, 4),
            Err(SchemaTooNew { found: 4, known: 3 })
        );
        assert_eq!(
            migrations_to_apply(&steps, -1),
            Err(SchemaTooNew {
                found: -1,
                known: 3
            })
        );
    }

    #[test]
    fn stored_ids_say_what_does_not_parse() {
        assert_eq!(
            stored_id("wallet id", "a/b", WalletId::parse).unwrap_err(),
            format!("wallet id \"a/b\": {}", WalletId::parse("a/b").unwrap_err())
        );
    }
}
