//! The TOPdesk dialect over the PostgreSQL store, whatever backend the rest of the suite
//! runs on: every query field (whose SQL expressions differ by backend in collation,
//! booleans and UUIDs), paging while mutations are added, accounts and the service
//! user. The database is the store's test database (`$PREPAID_TEST_DATABASE_URL`); see
//! `prepaid_store_postgres::testing` for what happens when there is none.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn ids_of(page: &Value) -> Vec<String> {
    page["_embedded"]["item"]
        .as_array()
        .expect("_embedded.item")
        .iter()
        .map(|m| last_segment(m["_links"]["self"]["href"].as_str().unwrap()).to_owned())
        .collect()
}

#[tokio::test]
async fn queries_paging_and_accounts_over_postgres() {
    let Some(server) = Server::start_postgres().await else {
        return;
    };
    let api = server.admin();
    let (a, b) = (uuid(), uuid());
    let mut ids: HashMap<&str, String> = HashMap::new();
    let rows: [(&str, &str, i64, &str, Option<&str>); 4] = [
        (
            "a1",
            a.as_str(),
            600,
            "2026-01-15T09:00:00Z",
            Some("invoice 2026-01"),
        ),
        (
            "a2",
            a.as_str(),
            -60,
            "2026-02-20T08:00:00Z",
            Some("Ünïcode"),
        ),
        ("b1", b.as_str(), 300, "2026-01-20T10:00:00Z", None),
        (
            "b2",
            b.as_str(),
            0,
            "2026-03-01T00:00:00Z",
            Some("invoice 2026-03"),
        ),
    ];
    for (label, customer, minutes, date, reference) in rows {
        let id = uuid();
        topdesk_create(
            &api,
            &topdesk_dto(customer, Some(&id), minutes, date, reference),
        )
        .await;
        ids.insert(label, id);
    }
    let incident = format!("https://acme.topdesk.net/tas/api/incidents/id/{}", uuid());
    let t = api
        .post(
            &format!("/v1/wallets/{b}/mutations"),
            &json!({"kind": "debit", "amount": 45, "occurred_at": "2026-02-25T10:00:00Z",
                "reference": {"type": "SIMPLE_CHANGE", "text": "C 17", "link": incident}}),
        )
        .await
        .ok(201);
    ids.insert("t", str_of(&t, "id").to_owned());

    let b_href = format!("https://acme.topdesk.net/tas/api/branches/id/{b}");
    let cases: Vec<(String, &str)> = vec![
        ("amountOfMinutes=gt=0".into(), "a1 b1"),
        ("amountOfMinutes=in=(0,-45)".into(), "b2 t"),
        (
            "modificationDate=ge=2026-02-01;modificationDate=lt=2026-03-01T00:00:00Z".into(),
            "a2 t",
        ),
        ("on.type==SIMPLE_CHANGE".into(), "t"),
        ("on.type!=SIMPLE_CHANGE".into(), "a1 a2 b1 b2"),
        ("on.reference==null".into(), "b1"),
        ("on.reference=sw=invoice".into(), "a1 b2"),
        ("on.reference=gt='invoice 2026-01'".into(), "a2 b2"),
        ("on.referenceLink!=null".into(), "t"),
        (format!("_links.for.href=={b_href}"), "b1 b2 t"),
        (
            "_links.for.href=sw=https://acme.topdesk.net/tas/".into(),
            "a1 a2 b1 b2 t",
        ),
        (format!("_links.for.id=={}", a.to_uppercase()), "a1 a2"),
        (format!("id=in=({},{})", ids["a1"], ids["t"]), "a1 t"),
        (format!("_links.self.href!=x/{}", ids["a1"]), "a2 b1 b2 t"),
    ];
    for (query, expected) in &cases {
        let page = hal_ok(
            topdesk_list(&api, &[("query", query), ("pageSize", "1000")]).await,
            200,
        );
        let got: BTreeSet<String> = ids_of(&page).into_iter().collect();
        let want: BTreeSet<String> = expected
            .split_whitespace()
            .map(|l| ids[l].clone())
            .collect();
        assert_eq!(got, want, "query {query}");
        assert_eq!(page["total"], want.len(), "query {query}");
    }
    // `_links.for.href=gt=` compares text byte by byte: a's href is either side of b's.
    let a_href = format!("https://acme.topdesk.net/tas/api/branches/id/{a}");
    let page = hal_ok(
        topdesk_list(&api, &[("query", &format!("_links.for.href=lt={b_href}"))]).await,
        200,
    );
    let expected = if a_href < b_href { 2 } else { 0 };
    assert_eq!(page["total"], expected);

    // Balances are the sums; accounts exist after a top-up.
    let acc = hal_ok(
        api.get(&format!("{TOPDESK_ROOT}/prepaid-services-accounts/{b}"))
            .await,
        200,
    );
    assert_eq!(acc["balance"], 300 - 45);
    assert_eq!(acc["_links"]["of"]["href"], b_href);

    // Paging while another task adds mutations.
    let writer = {
        let (api, a) = (api.clone(), a.clone());
        tokio::spawn(async move {
            for _ in 0..20 {
                topdesk_create(&api, &topdesk_dto(&a, None, 1, "2026-04-01", None)).await;
            }
        })
    };
    let mut seen = Vec::new();
    let mut page = hal_ok(topdesk_list(&api, &[("pageSize", "2")]).await, 200);
    loop {
        seen.extend(ids_of(&page));
        let Some(next) = page["_links"].get("next") else {
            break;
        };
        page = hal_ok(
            topdesk_follow(&api, next["href"].as_str().unwrap()).await,
            200,
        );
    }
    writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an item was repeated");
    for label in ["a1", "a2", "b1", "b2", "t"] {
        assert!(unique.contains(&ids[label]), "{label} was missed");
    }
    let all = hal_ok(topdesk_list(&api, &[("pageSize", "1000")]).await, 200);
    assert_eq!(all["total"], 25);
    assert_eq!(&ids_of(&all)[..seen.len()], &seen[..]);

    // The service user lives in the shared database.
    let path = format!("{TOPDESK_ROOT}/service-user");
    assert_eq!(api.send(Method::HEAD, &path, &[], None).await.status, 404);
    assert_eq!(api.send(Method::POST, &path, &[], None).await.status, 201);
    assert_eq!(api.send(Method::POST, &path, &[], None).await.status, 200);
    assert_eq!(api.send(Method::HEAD, &path, &[], None).await.status, 204);
}
