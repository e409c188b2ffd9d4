//! Webhooks: endpoints, signed deliveries verified by an independent Standard Webhooks
//! library (the PyPI `standardwebhooks` package, in `webhook_receiver.py`), delivery in
//! commit order per wallet through a failing receiver, no acknowledged debit's event
//! lost (and none invented) across a SIGKILL, and the guard against private targets.

use crate::common;

use common::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a test waits for deliveries before it fails.
const WAIT_SECS_MAX: u64 = 120;

/// The environment of a server that may deliver to the receiver on 127.0.0.1, and
/// retries within a fraction of a second.
fn env() -> Vec<(&'static str, String)> {
    vec![
        ("PREPAID_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("PREPAID_WEBHOOK_RETRY_DELAY_MS_MAX", "100".to_owned()),
    ]
}

/// The Python receiver, killed when dropped.
struct Receiver {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Receiver {
    /// Starts the receiver; `None` (after a skip line) when Python's `standardwebhooks`
    /// is missing outside CI. In CI a missing package fails the test.
    fn start() -> Option<Receiver> {
        let present = Command::new("python3")
            .args(["-c", "import standardwebhooks"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3 with the standardwebhooks package is needed (pip install standardwebhooks)"
            );
            eprintln!("webhook tests not run: python3 -m pip install standardwebhooks");
            return None;
        }
        let dir = tempfile::tempdir().expect("receiver dir");
        let script: PathBuf = [
            env!("CARGO_MANIFEST_DIR"),
            "tests",
            "it",
            "webhook_receiver.py",
        ]
        .iter()
        .collect();
        let child = Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the receiver");
        let port_file = dir.path().join("port");
        let mut port = None;
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                port = text.trim().parse().ok();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Receiver {
            child,
            port: port.expect("the receiver announced its port"),
            dir,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn set_secrets(&self, secrets: &[&str]) {
        std::fs::write(self.dir.path().join("secrets"), secrets.join("\n")).expect("secrets");
    }

    fn fail_first(&self, n: usize) {
        std::fs::write(self.dir.path().join("fail_first"), n.to_string()).expect("fail_first");
    }

    /// Every delivery received so far.
    fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `done` holds of the log, and returns it; fails after
    /// [`WAIT_SECS_MAX`].
    async fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..WAIT_SECS_MAX * 10 {
            let log = self.log();
            if done(&log) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}: not received; log: {:?}", self.log());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The mutation ids of the `mutation.created` events answered 200.
fn delivered_mutations(log: &[Value]) -> BTreeSet<String> {
    log.iter()
        .filter(|l| l["status"] == 200 && l["event"]["type"] == "mutation.created")
        .filter_map(|l| {
            l["event"]["data"]["mutation"]["id"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// Waits until every debit of `made` (ids by wallet, in the order they were made) was
/// delivered, checks that the first successful delivery of each came in that order per
/// wallet, and returns the log.
async fn every_debit_in_order(
    receiver: &Receiver,
    made: &BTreeMap<&str, Vec<String>>,
) -> Vec<Value> {
    let log = receiver
        .wait_for("every debit's event", |log| {
            let got = delivered_mutations(log);
            made.values().flatten().all(|id| got.contains(id))
        })
        .await;
    for (wallet, ids) in made {
        let mut order: Vec<String> = Vec::new();
        for line in log.iter().filter(|l| l["status"] == 200) {
            let m = &line["event"]["data"]["mutation"];
            if m["wallet_id"] == *wallet
                && m["kind"] == "debit"
                && let Some(id) = m["id"].as_str()
                && !order.iter().any(|o| o == id)
            {
                order.push(id.to_owned());
            }
        }
        assert_eq!(&order, ids, "wallet {wallet}");
    }
    log
}

async fn create_endpoint(api: &Api, receiver: &Receiver, types: &[&str]) -> Value {
    let v = api
        .post(
            "/v1/webhook-endpoints",
            &json!({"url": receiver.url(), "event_types": types, "description": "test"}),
        )
        .await
        .ok(201);
    let secret = str_of(&v, "secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{v}");
    receiver.set_secrets(&[&secret]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_and_verified_by_a_standard_webhooks_library() {
    let Some(receiver) = Receiver::start() else {
        return;
    };
    let server = Server::start_with_env(&env()).await;
    let api = server.admin();
    let endpoint = create_endpoint(&api, &receiver, &[]).await;
    let id = str_of(&endpoint, "id").to_owned();
    // The secret shows once: not in a read of the endpoint, nor in the list.
    let read = api
        .get(&format!("/v1/webhook-endpoints/{id}"))
        .await
        .ok(200);
    assert!(read.get("secret").is_none(), "{read}");
    let list = api.get("/v1/webhook-endpoints").await.ok(200);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
    assert!(list["data"][0].get("secret").is_none(), "{list}");

    api.funded_wallet("c1", "w1", 100).await;
    let debit = api.debit("w1", 40).await;
    let hold = api
        .post("/v1/wallets/w1/holds", &json!({"amount": 60}))
        .await
        .ok(201);
    let hold_id = str_of(&hold, "id").to_owned();
    api.post(&format!("/v1/holds/{hold_id}/commit"), &json!({}))
        .await
        .ok(200);
    let log = receiver
        .wait_for("the events of a top-up, a debit and a hold", |log| {
            let types: BTreeSet<&str> = log
                .iter()
                .filter(|l| l["status"] == 200)
                .filter_map(|l| l["event"]["type"].as_str())
                .collect();
            [
                "mutation.created",
                "hold.created",
                "hold.committed",
                "wallet.depleted",
            ]
            .iter()
            .all(|t| types.contains(t))
                && delivered_mutations(log).len() == 3
        })
        .await;
    for line in &log {
        assert_eq!(line["verified"], json!([true]), "{line}");
        assert_eq!(line["altered_accepted"], false, "{line}");
        assert_eq!(line["stale_accepted"], false, "{line}");
        assert_eq!(line["webhook_id"], line["event"]["id"], "{line}");
    }
    assert!(delivered_mutations(&log).contains(str_of(&debit, "id")));
    let depleted = log
        .iter()
        .find(|l| l["event"]["type"] == "wallet.depleted")
        .expect("depleted");
    assert_eq!(depleted["event"]["data"]["wallet_id"], "w1");
    assert_eq!(depleted["event"]["data"]["customer_id"], "c1");
    assert_eq!(depleted["event"]["data"]["available_after"], 0);
    let debit_event = log
        .iter()
        .find(|l| l["event"]["data"]["mutation"]["id"] == debit["id"])
        .expect("debit event");
    assert_eq!(
        debit_event["event"]["data"]["mutation"]["balance_after"],
        60
    );
    assert_eq!(debit_event["event"]["data"]["balance_after"], 60);

    // The delivery log shows each delivery once, delivered at the first attempt.
    let deliveries = api
        .get(&format!("/v1/webhook-endpoints/{id}/deliveries"))
        .await
        .ok(200);
    let data = deliveries["data"].as_array().expect("deliveries");
    assert!(data.len() >= 5, "{deliveries}");
    for d in data {
        assert_eq!(d["state"], "delivered", "{d}");
        assert_eq!(d["status_code"], 200, "{d}");
        assert_eq!(d["attempts"], 1, "{d}");
        assert!(d["response_ms"].is_u64(), "{d}");
    }

    // After a rotation both secrets sign during the overlap, and each verifies.
    let rotated = api
        .post(
            &format!("/v1/webhook-endpoints/{id}/rotate-secret"),
            &json!({"overlap_secs": 3600}),
        )
        .await
        .ok(200);
    let old = std::fs::read_to_string(receiver.dir.path().join("secrets")).expect("secrets");
    receiver.set_secrets(&[old.trim(), str_of(&rotated, "secret")]);
    let before = receiver.log().len();
    api.top_up("w1", 1).await;
    let log = receiver
        .wait_for("a delivery after the rotation", |log| log.len() > before)
        .await;
    let after = &log[before];
    assert_eq!(after["signatures"], 2, "{after}");
    assert_eq!(after["verified"], json!([true, true]), "{after}");

    // A retry of a delivered event sends it again, with the same webhook-id.
    let first = &data[0];
    let before = receiver.log().len();
    api.post(
        &format!(
            "/v1/webhook-endpoints/{id}/deliveries/{}/retry",
            str_of(first, "id")
        ),
        &json!({}),
    )
    .await
    .ok(202);
    let log = receiver
        .wait_for("a retried delivery", |log| {
            log[before..]
                .iter()
                .any(|l| l["webhook_id"] == first["event_id"])
        })
        .await;
    assert!(log.len() > before);
    // A replay of everything so far sends every finished delivery again.
    let replayed = api
        .post(
            &format!("/v1/webhook-endpoints/{id}/replay"),
            &json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}),
        )
        .await
        .ok(202);
    assert!(int(&replayed, "queued") >= 5, "{replayed}");

    // Disabled, the endpoint receives nothing; deleted, it is gone.
    let patched = api
        .patch(
            &format!("/v1/webhook-endpoints/{id}"),
            &json!({"enabled": false}),
        )
        .await
        .ok(200);
    assert_eq!(patched["enabled"], false);
    let deleted = api
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/webhook-endpoints/{id}"),
            &[],
            None,
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(
        api.get(&format!("/v1/webhook-endpoints/{id}")).await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_everything_in_order_per_wallet_once_it_recovers() {
    let Some(receiver) = Receiver::start() else {
        return;
    };
    receiver.fail_first(12);
    let server = Server::start_with_env(&env()).await;
    let api = server.admin();
    create_endpoint(&api, &receiver, &["mutation.created"]).await;
    api.funded_wallet("c1", "a", 1000).await;
    api.funded_wallet("c2", "b", 1000).await;
    let mut made: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for i in 0..10 {
        for wallet in ["a", "b"] {
            let m = api.debit(wallet, 1 + i).await;
            made.entry(wallet)
                .or_default()
                .push(str_of(&m, "id").to_owned());
        }
    }
    let log = every_debit_in_order(&receiver, &made).await;
    assert!(log.iter().take(12).all(|l| l["status"] == 500));
    for line in &log {
        assert_eq!(line["verified"], json!([true]), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_given_up_after_its_last_attempt_and_its_wallet_goes_on() {
    let Some(receiver) = Receiver::start() else {
        return;
    };
    // Every attempt of the first event fails; the next event's first attempt succeeds.
    receiver.fail_first(12);
    let server = Server::start_with_env(&env()).await;
    let api = server.admin();
    let endpoint = create_endpoint(&api, &receiver, &["mutation.created"]).await;
    let id = str_of(&endpoint, "id");
    api.funded_wallet("c1", "w1", 100).await;
    let debit = api.debit("w1", 1).await;
    let log = receiver
        .wait_for("the debit after the given-up top-up", |log| {
            delivered_mutations(log).contains(str_of(&debit, "id"))
        })
        .await;
    assert_eq!(
        log.len(),
        13,
        "12 attempts of the top-up, then the debit: {log:?}"
    );
    assert!(
        log[..12]
            .iter()
            .all(|l| l["webhook_id"] == log[0]["webhook_id"])
    );
    let deliveries = api
        .get(&format!("/v1/webhook-endpoints/{id}/deliveries"))
        .await
        .ok(200);
    let states: Vec<(&str, i64)> = deliveries["data"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| (str_of(d, "state"), int(d, "attempts")))
        .collect();
    assert_eq!(states, [("failed", 12), ("delivered", 1)], "{deliveries}");
    assert_eq!(deliveries["data"][0]["status_code"], 500);
    assert_eq!(deliveries["data"][0]["next_attempt_at"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_acknowledged_debit_loses_its_event_across_a_sigkill() {
    let Some(receiver) = Receiver::start() else {
        return;
    };
    let mut server = Server::start_with_env(&env()).await;
    let admin = server.admin();
    create_endpoint(&admin, &receiver, &["mutation.created"]).await;
    let wallets = ["k1", "k2", "k3", "k4"];
    for w in wallets {
        admin.funded_wallet(&format!("c-{w}"), w, 1_000_000).await;
    }
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let reached = Arc::new(tokio::sync::Notify::new());
    let killed = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let api = admin.with_bearer(server.admin_secret());
        let wallet = wallets[worker % wallets.len()];
        let (acked, count, reached, killed) = (
            acked.clone(),
            count.clone(),
            reached.clone(),
            killed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let body = json!({"kind": "debit", "amount": 1});
                let Ok(r) = api
                    .try_post(&format!("/v1/wallets/{wallet}/mutations"), &body)
                    .await
                else {
                    assert!(
                        killed.load(Ordering::SeqCst),
                        "a request failed before the kill"
                    );
                    return;
                };
                let m = r.ok(201);
                acked
                    .lock()
                    .expect("acked")
                    .push(str_of(&m, "id").to_owned());
                if count.fetch_add(1, Ordering::SeqCst) + 1 == 300 {
                    reached.notify_one();
                }
            }
        }));
    }
    reached.notified().await;
    killed.store(true, Ordering::SeqCst);
    server.kill();
    for t in tasks {
        t.await.expect("load worker");
    }
    let acked = acked.lock().expect("acked").clone();
    server.start_again().await;
    let admin = server.admin();
    receiver
        .wait_for("every acknowledged debit's event", |log| {
            let got = delivered_mutations(log);
            acked.iter().all(|id| got.contains(id))
        })
        .await;
    // Every event delivered names a mutation of the ledger: none for a change that did
    // not commit. Those in flight at the kill that did commit have theirs too.
    let mut ledger = BTreeSet::new();
    for w in wallets {
        for m in admin
            .list_all(&format!("/v1/wallets/{w}/mutations"), 1000)
            .await
        {
            ledger.insert(str_of(&m, "id").to_owned());
        }
    }
    let log = receiver
        .wait_for("every committed debit's event", |log| {
            delivered_mutations(log).len() >= ledger.len()
        })
        .await;
    let delivered = delivered_mutations(&log);
    let invented: Vec<&String> = delivered.difference(&ledger).collect();
    assert!(invented.is_empty(), "events of no mutation: {invented:?}");
    assert_eq!(delivered, ledger);
    eprintln!(
        "{} acknowledged debits, {} mutations committed, every one delivered",
        acked.len(),
        ledger.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_every_event_in_order_per_wallet() {
    let Some(schema) = fresh_schema().await else {
        return;
    };
    let Some(receiver) = Receiver::start() else {
        return;
    };
    receiver.fail_first(4);
    let secret = "webhooks-two-instances-admin-secret";
    let one = Server::start_on_schema_with_env(&schema, secret, &env()).await;
    let two = Server::start_on_schema_with_env(&schema, secret, &env()).await;
    let (a, b) = (one.admin(), two.admin());
    create_endpoint(&a, &receiver, &["mutation.created"]).await;
    a.funded_wallet("c1", "x", 1000).await;
    a.funded_wallet("c2", "y", 1000).await;
    let mut made: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for i in 0..20 {
        let api = if i % 2 == 0 { &a } else { &b };
        for wallet in ["x", "y"] {
            let m = api.debit(wallet, 1).await;
            made.entry(wallet)
                .or_default()
                .push(str_of(&m, "id").to_owned());
        }
    }
    let log = every_debit_in_order(&receiver, &made).await;
    let delivered: Vec<&Value> = log.iter().filter(|l| l["status"] == 200).collect();
    let unique: BTreeSet<&str> = delivered
        .iter()
        .filter_map(|l| l["webhook_id"].as_str())
        .collect();
    eprintln!(
        "two instances: {} events delivered, {} deliveries answered 200",
        unique.len(),
        delivered.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_sweep_expires_is_delivered_too() {
    let Some(receiver) = Receiver::start() else {
        return;
    };
    let server = Server::start_with_env(&env()).await;
    let api = server.admin();
    create_endpoint(
        &api,
        &receiver,
        &["hold.expired", "grant.expired", "hold.released"],
    )
    .await;
    api.funded_wallet("c1", "w1", 100).await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let hold = api
        .post(
            "/v1/wallets/w1/holds",
            &json!({"amount": 10, "expires_at": soon}),
        )
        .await
        .ok(201);
    let released = api
        .post("/v1/wallets/w1/holds", &json!({"amount": 5}))
        .await
        .ok(201);
    api.post(
        &format!("/v1/holds/{}/release", str_of(&released, "id")),
        &json!({}),
    )
    .await
    .ok(200);
    let grant = api
        .post(
            "/v1/wallets/w1/mutations",
            &json!({"kind": "top_up", "amount": 7, "category": "granted", "expires_at": soon}),
        )
        .await
        .ok(201);
    let log = receiver
        .wait_for("the sweep's events", |log| {
            let types: BTreeSet<&str> = log
                .iter()
                .filter(|l| l["status"] == 200)
                .filter_map(|l| l["event"]["type"].as_str())
                .collect();
            types.len() == 3
        })
        .await;
    let of = |t: &str| {
        log.iter()
            .find(|l| l["event"]["type"] == t)
            .map(|l| l["event"]["data"].clone())
            .expect("event")
    };
    assert_eq!(of("hold.expired")["hold"]["id"], hold["id"]);
    assert_eq!(of("hold.expired")["hold"]["status"], "expired");
    assert_eq!(of("hold.released")["hold"]["id"], released["id"]);
    assert_eq!(of("grant.expired")["grant_id"], grant["id"]);
    assert_eq!(of("grant.expired")["mutation"]["kind"], "expiry");
    assert_eq!(of("grant.expired")["mutation"]["amount"], -7);
}

/// A low-balance alert and an automatic top-up, driven through the native API, reach
/// the receiver as `wallet.low_balance`, `auto_topup.succeeded` and `auto_topup.failed`,
/// in the wallet's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_balance_and_auto_topup_events_are_delivered() {
    let Some(receiver) = Receiver::start() else {
        return;
    };
    let server = Server::start_with_env(&env()).await;
    let api = server.admin();
    create_endpoint(
        &api,
        &receiver,
        &[
            "wallet.low_balance",
            "auto_topup.succeeded",
            "auto_topup.failed",
        ],
    )
    .await;
    api.funded_wallet("c1", "w1", 1000).await;
    api.json(
        reqwest::Method::PUT,
        "/v1/wallets/w1/low-balance-alert",
        &json!({"thresholds": [300]}),
    )
    .await
    .ok(200);
    let rule = |method: &str| {
        json!({"threshold": 100, "method": "fixed", "amount": 500, "funding": "payment",
            "payment_method": method})
    };
    let put_rule = |method: &'static str| {
        let api = api.clone();
        async move {
            api.json(
                reqwest::Method::PUT,
                "/v1/wallets/w1/auto-topup",
                &rule(method),
            )
            .await
            .ok(200);
        }
    };
    put_rule("pm_card_ok").await;
    // 1000 → 250 crosses 300; → 50 starts a top-up, paid and credited: 550.
    api.mutate("w1", "debit", 750).await.ok(201);
    api.mutate("w1", "debit", 200).await.ok(201);
    receiver
        .wait_for("the top-up's success", |log| {
            log.iter()
                .any(|l| l["status"] == 200 && l["event"]["type"] == "auto_topup.succeeded")
        })
        .await;
    // 550 → 50 crosses 300 again and starts a top-up that the provider declines.
    put_rule("decline_card").await;
    api.mutate("w1", "debit", 500).await.ok(201);
    let log = receiver
        .wait_for("the top-up's failure", |log| {
            log.iter()
                .any(|l| l["status"] == 200 && l["event"]["type"] == "auto_topup.failed")
        })
        .await;
    let mut seen = BTreeSet::new();
    let events: Vec<&Value> = log
        .iter()
        .filter(|l| l["status"] == 200)
        .map(|l| &l["event"])
        .filter(|e| seen.insert(e["id"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "wallet.low_balance",
            "auto_topup.succeeded",
            "wallet.low_balance",
            "auto_topup.failed"
        ],
        "{events:?}"
    );
    assert_eq!(events[0]["data"]["threshold"], 300);
    assert_eq!(events[0]["data"]["balance_after"], 250);
    assert_eq!(events[0]["data"]["available_after"], 250);
    let succeeded = &events[1]["data"];
    assert_eq!(succeeded["auto_topup"], json!({"number": 1, "amount": 500}));
    assert_eq!(succeeded["mutation"]["kind"], "top_up");
    assert_eq!(succeeded["mutation"]["reference"]["type"], "auto_topup");
    assert_eq!(succeeded["balance_after"], 550);
    let failed = &events[3]["data"];
    assert_eq!(
        failed["auto_topup"],
        json!({"number": 2, "amount": 500, "failure_reason": "payment_declined"})
    );
    assert!(failed.get("mutation").is_none(), "{failed}");
    assert_eq!(
        (failed["wallet_id"].as_str(), failed["customer_id"].as_str()),
        (Some("w1"), Some("c1"))
    );
    assert_eq!(failed["balance_after"], 50);
    assert_eq!(events[3]["id"], "auto_topup.failed:w1:2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_unless_the_operator_allows_them() {
    let server = Server::start().await;
    let api = server.admin();
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "ftp://example.com/hook",
    ] {
        api.post("/v1/webhook-endpoints", &json!({"url": url}))
            .await
            .problem(400, "invalid_request");
    }
    api.post(
        "/v1/webhook-endpoints",
        &json!({"url": "https://example.com/hook"}),
    )
    .await
    .ok(201);
    let allowed = Server::start_with_env(&env()).await;
    allowed
        .admin()
        .post(
            "/v1/webhook-endpoints",
            &json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await
        .ok(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_limits_hold_at_the_limit() {
    let server = Server::start().await;
    let api = server.admin();
    let base = "https://example.com/";
    let long = format!("{base}{}", "a".repeat(2048 - base.len()));
    let all = [
        "mutation.created",
        "hold.created",
        "hold.committed",
        "hold.released",
        "hold.expired",
        "grant.expired",
        "wallet.depleted",
        "wallet.low_balance",
        "endpoint.disabled",
        "auto_topup.succeeded",
        "auto_topup.failed",
    ];
    api.post(
        "/v1/webhook-endpoints",
        &json!({"url": long, "event_types": all, "description": "d".repeat(512)}),
    )
    .await
    .ok(201);
    for body in [
        json!({"url": format!("{long}a")}),
        json!({"url": base, "description": "d".repeat(513)}),
        json!({"url": base, "event_types": ["mutation.created", "mutation.created"]}),
        json!({"url": base, "event_types": ["nope"]}),
    ] {
        api.post("/v1/webhook-endpoints", &body)
            .await
            .problem(400, "invalid_request");
    }
    for _ in 1..20 {
        api.post("/v1/webhook-endpoints", &json!({"url": base}))
            .await
            .ok(201);
    }
    api.post("/v1/webhook-endpoints", &json!({"url": base}))
        .await
        .problem(409, "webhook_endpoints_exceeded");
    // A read key lists them, without secrets; it may not create one.
    let (_, read) = api.create_key("reader", &["read"], None).await;
    let list = read.get("/v1/webhook-endpoints").await.ok(200);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(20));
    read.post("/v1/webhook-endpoints", &json!({"url": base}))
        .await
        .problem(403, "forbidden");
}
