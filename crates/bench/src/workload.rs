//! The prepaid side: setting up customers and funded wallets over the native API, and
//! the per-connection request loops of each workload.

use crate::http::{Conn, Target, call, open_many};
use crate::load::{Pick, REQUEST_TIMEOUT, Window, WorkerStats};
use anyhow::Context;
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::json;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The most mutations `POST /v1/batch` takes in one request (the API's limit).
pub const BATCH_ITEMS_MAX: usize = 8000;

/// The balance each wallet is topped up with before the debits; far more than any run
/// can debit.
pub const OPENING_BALANCE: i64 = 1_000_000_000_000;

/// The live grants each wallet of the many-grants cell holds: that many top-ups of
/// [`GRANT_AMOUNT`] each, made before the run.
pub const GRANTS_MANY: usize = 1_000;

/// What each of those top-ups grants: far more than one cell debits from its first.
const GRANT_AMOUNT: i64 = 1_000_000;

/// The wallets of the many-grants cell, one per connection at 64 connections.
pub const GRANT_WALLETS: usize = 64;

/// Wallets are spread over this many customers.
pub const CUSTOMERS: usize = 64;

/// Connections used to create customers and wallets.
const SETUP_CONNECTIONS: usize = 16;

/// Connections that send the fill's batches: a few, so the server parses one batch
/// while it commits another.
const FILL_CONNECTIONS: usize = 4;

/// The id of the wallet every request of the hot-wallet cell debits.
const HOT_WALLET: &str = "bench-hot";

/// The body of every single debit.
const DEBIT_BODY: &[u8] = br#"{"kind":"debit","amount":1}"#;

/// The TouchTopUp company of the sale workload; its customers are `1..=`[`CUSTOMERS`],
/// each with its main wallet `<company>.<customer>`.
const SALE_COMPANY: u32 = 1;

/// The wallets the workloads use.
pub struct Wallets {
    /// Spread wallets, indexed by [`Pick::index`].
    spread: Vec<String>,
    hot: String,
    /// The TouchTopUp customers of the sale workload.
    sale_customers: usize,
    /// The wallets holding [`GRANTS_MANY`] live grants each.
    many_grants: Vec<String>,
}

impl Wallets {
    /// The same wallets with the many-grants ones in the place of the spread ones, for
    /// the many-grants cell.
    pub fn many_grants(&self) -> Arc<Wallets> {
        Arc::new(Wallets {
            spread: self.many_grants.clone(),
            hot: self.hot.clone(),
            sale_customers: self.sale_customers,
            many_grants: self.many_grants.clone(),
        })
    }

    fn id(&self, pick: Pick, connection: usize, seq: u64) -> &str {
        match pick.index(connection, seq) {
            Some(i) => &self.spread[i],
            None => &self.hot,
        }
    }
}

/// Creates a read-write API key, the customers and `count` spread wallets plus the hot
/// wallet, and tops every wallet up. Returns the target to load with the new key.
pub async fn set_up(admin: &Target, count: usize) -> anyhow::Result<(Target, Arc<Wallets>)> {
    let mut conn = Conn::open(admin).await?;
    let key = call(
        &mut conn,
        Method::POST,
        "/v1/api-keys",
        Some(json!({"name": format!("bench-{}", uuid::Uuid::new_v4().simple()), "scopes": ["read", "write"]})),
        StatusCode::CREATED,
    )
    .await
    .context("creating the benchmark's API key")?;
    let secret = key["secret"]
        .as_str()
        .context("the new API key has no secret")?;
    let target = Target::new(admin.addr, secret)?;

    let customers: Vec<String> = (0..CUSTOMERS.min(count.max(1)))
        .map(|i| format!("bench-c{i:03}"))
        .collect();
    let spread: Vec<String> = (0..count).map(|i| format!("bench-w{i:05}")).collect();
    let wallets = Wallets {
        spread,
        hot: HOT_WALLET.to_owned(),
        sale_customers: CUSTOMERS,
        many_grants: (0..GRANT_WALLETS)
            .map(|i| format!("bench-g{i:02}"))
            .collect(),
    };

    let mut jobs: Vec<(String, serde_json::Value)> = customers
        .iter()
        .map(|c| ("/v1/customers".to_owned(), json!({"id": c, "name": c})))
        .collect();
    run_setup(&target, jobs)
        .await
        .context("creating customers")?;
    jobs = wallets
        .spread
        .iter()
        .chain(std::iter::once(&wallets.hot))
        .chain(&wallets.many_grants)
        .enumerate()
        .map(|(i, w)| {
            let customer = &customers[i % customers.len()];
            (
                format!("/v1/customers/{customer}/wallets"),
                json!({"id": w, "unit": "EUR", "scale": 2}),
            )
        })
        .collect();
    run_setup(&target, jobs).await.context("creating wallets")?;

    // The TouchTopUp company and customers of the sale workload, each with its main
    // wallet.
    let mut conn = Conn::open(admin).await?;
    call(
        &mut conn,
        Method::PUT,
        &format!("/v1/icrtouch/companies/{SALE_COMPANY}"),
        Some(json!({"name": "bench", "currency": "EUR", "scale": 2})),
        StatusCode::OK,
    )
    .await
    .context("creating the TouchTopUp company")?;
    let mut conn = Conn::open(&target).await?;
    for custid in 1..=wallets.sale_customers {
        call(
            &mut conn,
            Method::PUT,
            &format!("/v1/icrtouch/companies/{SALE_COMPANY}/customers/{custid}"),
            Some(json!({"firstname": "bench", "lastname": custid.to_string()})),
            StatusCode::OK,
        )
        .await
        .context("creating a TouchTopUp customer")?;
    }
    let sale_wallets: Vec<String> = (1..=wallets.sale_customers)
        .map(|c| format!("{SALE_COMPANY}.{c}"))
        .collect();
    let all: Vec<&String> = wallets
        .spread
        .iter()
        .chain(std::iter::once(&wallets.hot))
        .chain(&sale_wallets)
        .collect();
    let top_ups: Vec<serde_json::Value> = all
        .iter()
        .map(|w| json!({"wallet_id": w, "kind": "top_up", "amount": OPENING_BALANCE}))
        .collect();
    post_batches(&target, &top_ups)
        .await
        .context("topping up the wallets")?;
    // The many-grants wallets: GRANTS_MANY top-ups each, every one a grant of its own.
    let grants: Vec<serde_json::Value> = wallets
        .many_grants
        .iter()
        .flat_map(|w| {
            (0..GRANTS_MANY)
                .map(move |_| json!({"wallet_id": w, "kind": "top_up", "amount": GRANT_AMOUNT}))
        })
        .collect();
    post_batches(&target, &grants)
        .await
        .context("making the many-grants wallets' grants")?;
    Ok((target, Arc::new(wallets)))
}

/// Sends `items` in `POST /v1/batch` requests of at most [`BATCH_ITEMS_MAX`], each item
/// expected to answer 201.
async fn post_batches(target: &Target, items: &[serde_json::Value]) -> anyhow::Result<()> {
    for chunk in items.chunks(BATCH_ITEMS_MAX) {
        let mut conn = Conn::open(target).await?;
        let answer = call(
            &mut conn,
            Method::POST,
            "/v1/batch",
            Some(json!({"mutations": chunk})),
            StatusCode::OK,
        )
        .await?;
        let results = answer["results"]
            .as_array()
            .context("batch answer without results")?;
        if let Some(bad) = results.iter().find(|r| r["status"] != 201) {
            anyhow::bail!("a batch item failed: {bad}");
        }
    }
    Ok(())
}

/// Sends `POST`s with JSON bodies over a few connections, each expecting 201.
async fn run_setup(target: &Target, jobs: Vec<(String, serde_json::Value)>) -> anyhow::Result<()> {
    let jobs = Arc::new(std::sync::Mutex::new(jobs));
    let mut set = tokio::task::JoinSet::new();
    for mut conn in open_many(target, SETUP_CONNECTIONS).await? {
        let jobs = jobs.clone();
        set.spawn(async move {
            let next = || jobs.lock().expect("setup queue").pop();
            while let Some((path, body)) = next() {
                call(
                    &mut conn,
                    Method::POST,
                    &path,
                    Some(body),
                    StatusCode::CREATED,
                )
                .await?;
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done.context("setup task failed")??;
    }
    Ok(())
}

/// Handles a transport-level failure: counts it, and reopens the connection. Returns
/// false when the connection cannot be reopened and the worker should stop.
async fn after_transport_error(
    conn: &mut Conn,
    stats: &mut WorkerStats,
    window: &Window,
    started: Instant,
    ops: u64,
    error: String,
) -> bool {
    stats.record(window, started, 0, ops);
    stats.note_error(error);
    conn.reopen().await.is_ok()
}

/// What one request of [`mutation_worker`] is.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// A TMF654 `topupBalance` of 0.01 EUR.
    TmfTopup,
    /// A TouchTopUp till sale of 0.01 EUR with one item.
    Sale,
}

/// One dialect mutation per request (see [`Shape`]), each with its own idempotency
/// key, until the window closes.
pub async fn mutation_worker(
    mut conn: Conn,
    index: usize,
    window: Window,
    cell: String,
    wallets: Arc<Wallets>,
    pick: Pick,
    shape: Shape,
) -> WorkerStats {
    let mut stats = WorkerStats::new();
    let mut seq = 0u64;
    let mut key = String::new();
    while window.is_open() {
        let (path, body) = match shape {
            Shape::TmfTopup => (
                "/tmf-api/prepayBalanceManagement/v4/topupBalance".to_owned(),
                json!({
                    "bucket": {"id": wallets.id(pick, index, seq)},
                    "amount": {"amount": 0.01, "units": "EUR"},
                    "description": "bench",
                }),
            ),
            Shape::Sale => {
                let custid = 1 + (index + seq as usize) % wallets.sale_customers;
                (
                    format!("/v1/icrtouch/companies/{SALE_COMPANY}/customers/{custid}/sales"),
                    json!({
                        "amount": 1,
                        "sale_id": seq,
                        "items": [{"itemrecord": 1, "qty": 1, "text": "coffee"}],
                    }),
                )
            }
        };
        key.clear();
        let _ = write!(key, "{cell}-{index}-{seq}");
        seq += 1;
        let body = Bytes::from(body.to_string());
        if !post_one(&mut conn, &mut stats, &window, &path, body, &key).await {
            break;
        }
    }
    stats
}

/// Sends one `POST` expecting 201 and records how it went; `false` when the connection
/// is lost for good and the worker should stop.
async fn post_one(
    conn: &mut Conn,
    stats: &mut WorkerStats,
    window: &Window,
    path: &str,
    body: Bytes,
    key: &str,
) -> bool {
    let started = Instant::now();
    let sent = conn.send(Method::POST, path, Some(body), Some(key));
    match tokio::time::timeout(REQUEST_TIMEOUT, sent).await {
        Ok(Ok(answer)) if answer.status == StatusCode::CREATED => {
            stats.record(window, started, 1, 0);
            true
        }
        Ok(Ok(answer)) => {
            stats.record(window, started, 0, 1);
            stats.note_error(format!("POST {path}: {}", answer.describe()));
            true
        }
        Ok(Err(e)) => {
            let error = format!("POST {path}: {e:#}");
            after_transport_error(conn, stats, window, started, 1, error).await
        }
        Err(_) => {
            let error = format!("POST {path}: no answer within {REQUEST_TIMEOUT:?}");
            after_transport_error(conn, stats, window, started, 1, error).await
        }
    }
}

/// One debit of 1 per request, each with its own idempotency key, until the window
/// closes.
pub async fn debit_worker(
    mut conn: Conn,
    index: usize,
    window: Window,
    cell: String,
    wallets: Arc<Wallets>,
    pick: Pick,
) -> WorkerStats {
    let mut stats = WorkerStats::new();
    let mut seq = 0u64;
    let mut path = String::new();
    let mut key = String::new();
    while window.is_open() {
        path.clear();
        let _ = write!(
            path,
            "/v1/wallets/{}/mutations",
            wallets.id(pick, index, seq)
        );
        key.clear();
        let _ = write!(key, "{cell}-{index}-{seq}");
        seq += 1;
        let body = Bytes::from_static(DEBIT_BODY);
        if !post_one(&mut conn, &mut stats, &window, &path, body, &key).await {
            break;
        }
    }
    stats
}

/// One balance read per request until the window closes.
pub async fn read_worker(
    mut conn: Conn,
    index: usize,
    window: Window,
    wallets: Arc<Wallets>,
    pick: Pick,
) -> WorkerStats {
    let mut stats = WorkerStats::new();
    let mut seq = 0u64;
    let mut path = String::new();
    while window.is_open() {
        path.clear();
        let _ = write!(path, "/v1/wallets/{}", wallets.id(pick, index, seq));
        seq += 1;
        let started = Instant::now();
        match tokio::time::timeout(REQUEST_TIMEOUT, conn.send(Method::GET, &path, None, None)).await
        {
            Ok(Ok(answer)) if answer.status == StatusCode::OK => {
                stats.record(&window, started, 1, 0)
            }
            Ok(Ok(answer)) => {
                stats.record(&window, started, 0, 1);
                stats.note_error(format!("GET {path}: {}", answer.describe()));
            }
            Ok(Err(e)) => {
                if !after_transport_error(
                    &mut conn,
                    &mut stats,
                    &window,
                    started,
                    1,
                    format!("GET {path}: {e:#}"),
                )
                .await
                {
                    break;
                }
            }
            Err(_) => {
                let error = format!("GET {path}: no answer within {REQUEST_TIMEOUT:?}");
                if !after_transport_error(&mut conn, &mut stats, &window, started, 1, error).await {
                    break;
                }
            }
        }
    }
    stats
}

/// A `POST /v1/batch` body of `items` mutations, each written by `item` from its index.
fn batch_json(items: usize, mut item: impl FnMut(usize, &mut String)) -> Bytes {
    let mut body = String::with_capacity(items * 96 + 16);
    body.push_str(r#"{"mutations":["#);
    for i in 0..items {
        if i > 0 {
            body.push(',');
        }
        item(i, &mut body);
    }
    body.push_str("]}");
    Bytes::from(body)
}

/// Builds one batch body of `items` debits of 1 spread over the wallets, each with its
/// own idempotency key.
fn batch_body(wallets: &Wallets, items: usize, cell: &str, index: usize, seq: u64) -> Bytes {
    let rows = wallets.spread.len();
    batch_json(items, |i, body| {
        let wallet = &wallets.spread[(index * items + seq as usize * items + i) % rows];
        let _ = write!(
            body,
            r#"{{"wallet_id":"{wallet}","kind":"debit","amount":1,"idempotency_key":"{cell}-{index}-{seq}-{i}"}}"#
        );
    })
}

/// Builds the fill's batch body of mutations `start..start + items`: mutation `n` goes
/// to spread wallet `n` modulo the wallets, and each pass over the wallets turns from
/// debits to top-ups of 1 and back, so every wallet's ledger holds both.
fn fill_body(wallets: &Wallets, start: usize, items: usize) -> Bytes {
    let rows = wallets.spread.len();
    batch_json(items, |i, body| {
        let n = start + i;
        let kind = if (n / rows).is_multiple_of(2) {
            "debit"
        } else {
            "top_up"
        };
        let wallet = &wallets.spread[n % rows];
        let _ = write!(
            body,
            r#"{{"wallet_id":"{wallet}","kind":"{kind}","amount":1,"idempotency_key":"fill-{n}"}}"#
        );
    })
}

/// Sends `total` mutations (see [`fill_body`]) in `POST /v1/batch` requests of up to
/// [`BATCH_ITEMS_MAX`] items over a few connections, so a store holds a realistic
/// history before it is measured. Fails on the first item not applied.
pub async fn fill(target: &Target, wallets: &Arc<Wallets>, total: usize) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for mut conn in open_many(target, FILL_CONNECTIONS).await? {
        let (next, wallets) = (next.clone(), wallets.clone());
        set.spawn(async move {
            loop {
                let start = next.fetch_add(BATCH_ITEMS_MAX, Ordering::Relaxed);
                if start >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                let items = BATCH_ITEMS_MAX.min(total - start);
                let body = fill_body(&wallets, start, items);
                let sent = conn.send(Method::POST, "/v1/batch", Some(body), None);
                let answer = tokio::time::timeout(REQUEST_TIMEOUT, sent)
                    .await
                    .with_context(|| {
                        format!("POST /v1/batch: no answer within {REQUEST_TIMEOUT:?}")
                    })?
                    .context("POST /v1/batch")?;
                if answer.status != StatusCode::OK {
                    anyhow::bail!("POST /v1/batch: {}", answer.describe());
                }
                batch_applied(&answer.body, items).map_err(anyhow::Error::msg)?;
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.context("fill task failed")??;
    }
    Ok(())
}

/// Counts the items of a batch answer that were applied (status 201). The answer is a
/// few MB; a byte scan keeps the load generator's CPU out of the server's way, and a
/// full parse is the fallback when the scan does not account for every item.
fn batch_applied(body: &[u8], items: usize) -> Result<u64, String> {
    const NEEDLE: &[u8] = br#""status":201"#;
    let fast = body.windows(NEEDLE.len()).filter(|w| *w == NEEDLE).count();
    if fast == items {
        return Ok(items as u64);
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("batch answer is not JSON: {e}"))?;
    let results = value["results"]
        .as_array()
        .ok_or("batch answer without results")?;
    if results.len() != items {
        return Err(format!(
            "batch answer has {} results for {items} items",
            results.len()
        ));
    }
    let applied = results.iter().filter(|r| r["status"] == 201).count();
    if applied == items {
        Ok(applied as u64)
    } else {
        let bad = results
            .iter()
            .find(|r| r["status"] != 201)
            .map(|r| r.to_string())
            .unwrap_or_default();
        Err(format!(
            "{} of {items} batch items failed, e.g. {bad}",
            items - applied
        ))
    }
}

/// One `POST /v1/batch` of `items` debits per request until the window closes.
pub async fn batch_worker(
    mut conn: Conn,
    index: usize,
    window: Window,
    cell: String,
    wallets: Arc<Wallets>,
    items: usize,
) -> WorkerStats {
    let mut stats = WorkerStats::new();
    let mut seq = 0u64;
    while window.is_open() {
        let body = batch_body(&wallets, items, &cell, index, seq);
        seq += 1;
        let started = Instant::now();
        match tokio::time::timeout(
            REQUEST_TIMEOUT,
            conn.send(Method::POST, "/v1/batch", Some(body), None),
        )
        .await
        {
            Ok(Ok(answer)) if answer.status == StatusCode::OK => {
                match batch_applied(&answer.body, items) {
                    Ok(applied) => stats.record(&window, started, applied, items as u64 - applied),
                    Err(e) => {
                        stats.record(&window, started, 0, items as u64);
                        stats.note_error(e);
                    }
                }
            }
            Ok(Ok(answer)) => {
                stats.record(&window, started, 0, items as u64);
                stats.note_error(format!("POST /v1/batch: {}", answer.describe()));
            }
            Ok(Err(e)) => {
                let error = format!("POST /v1/batch: {e:#}");
                if !after_transport_error(
                    &mut conn,
                    &mut stats,
                    &window,
                    started,
                    items as u64,
                    error,
                )
                .await
                {
                    break;
                }
            }
            Err(_) => {
                let error = format!("POST /v1/batch: no answer within {REQUEST_TIMEOUT:?}");
                if !after_transport_error(
                    &mut conn,
                    &mut stats,
                    &window,
                    started,
                    items as u64,
                    error,
                )
                .await
                {
                    break;
                }
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wallets(n: usize) -> Wallets {
        Wallets {
            spread: (0..n).map(|i| format!("w{i}")).collect(),
            hot: "hot".to_owned(),
            sale_customers: 1,
            many_grants: Vec::new(),
        }
    }

    #[test]
    fn batch_body_at_the_item_limit_is_valid_json_with_unique_keys() {
        let body = batch_body(&wallets(1024), BATCH_ITEMS_MAX, "cell", 3, 7);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let items = value["mutations"].as_array().expect("mutations");
        assert_eq!(items.len(), BATCH_ITEMS_MAX);
        let keys: std::collections::HashSet<_> =
            items.iter().map(|i| i["idempotency_key"].clone()).collect();
        assert_eq!(keys.len(), BATCH_ITEMS_MAX);
        assert!(
            body.len() < 4 * 1024 * 1024,
            "a full batch must stay under the 4 MiB body limit"
        );
    }

    #[test]
    fn fill_body_alternates_kinds_per_pass_with_unique_keys() {
        let w = wallets(3);
        let body = fill_body(&w, 2, 4);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let items = value["mutations"].as_array().expect("mutations");
        let seen: Vec<(&str, &str, &str)> = items
            .iter()
            .map(|i| {
                (
                    i["wallet_id"].as_str().expect("wallet"),
                    i["kind"].as_str().expect("kind"),
                    i["idempotency_key"].as_str().expect("key"),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("w2", "debit", "fill-2"),
                ("w0", "top_up", "fill-3"),
                ("w1", "top_up", "fill-4"),
                ("w2", "top_up", "fill-5"),
            ]
        );
    }

    #[test]
    fn batch_applied_counts_fast_and_falls_back_to_parsing() {
        let ok = r#"{"results":[{"status":201,"mutation":{}},{"status":201,"mutation":{}}]}"#;
        assert_eq!(batch_applied(ok.as_bytes(), 2), Ok(2));
        let spaced = r#"{"results": [{"status": 201}, {"status": 201}]}"#;
        assert_eq!(batch_applied(spaced.as_bytes(), 2), Ok(2));
        let failed =
            r#"{"results":[{"status":201},{"status":422,"error":{"code":"insufficient_funds"}}]}"#;
        let err = batch_applied(failed.as_bytes(), 2).expect_err("one item failed");
        assert!(err.contains("1 of 2"), "{err}");
    }

    #[test]
    fn spread_pick_never_shares_a_wallet_between_connections() {
        let pick = Pick::Spread {
            connections: 256,
            rows: 1024,
        };
        let w = wallets(1024);
        for seq in 0..8 {
            let used: std::collections::HashSet<_> = (0..256).map(|c| w.id(pick, c, seq)).collect();
            assert_eq!(used.len(), 256);
        }
        assert_eq!(w.id(Pick::Hot, 5, 9), "hot");
    }
}
