//! The TOPdesk dialect's list: FIQL `query` on every field of the DTO, malformed
//! queries answered 400 with the position at fault, and paging links that walk the
//! whole collection with nothing missed or repeated while mutations are added.

use crate::common;

use common::*;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The ids (last segments of the self links) of a list's items, in order.
fn item_ids(page: &Value) -> Vec<String> {
    page["_embedded"]["item"]
        .as_array()
        .expect("_embedded.item")
        .iter()
        .map(|m| last_segment(m["_links"]["self"]["href"].as_str().unwrap()).to_owned())
        .collect()
}

#[tokio::test]
async fn fiql_selects_on_every_field() {
    let server = Server::start().await;
    let api = server.admin();
    let base = topdesk_base(&api);
    let (a, b) = (uuid(), uuid());
    // label -> id
    let mut ids: HashMap<&str, String> = HashMap::new();
    let rows: [(&str, &str, i64, &str, Option<&str>); 6] = [
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
            100,
            "2026-02-10T12:30:00Z",
            Some("invoice 2026-02"),
        ),
        (
            "a3",
            a.as_str(),
            -60,
            "2026-02-20T08:00:00Z",
            Some("correction"),
        ),
        (
            "b1",
            b.as_str(),
            300,
            "2026-01-20T10:00:00Z",
            Some("it's \"quoted\""),
        ),
        ("b2", b.as_str(), 0, "2026-03-01T00:00:00Z", None),
        (
            "b3",
            b.as_str(),
            600,
            "2026-03-05T10:00:00Z",
            Some("invoice; 2026,03"),
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
            &format!("/v1/wallets/{a}/mutations"),
            &json!({"kind": "debit", "amount": 45, "occurred_at": "2026-02-25T10:00:00Z",
                "reference": {"type": "INCIDENT", "text": "I 2602 017", "link": incident}}),
        )
        .await
        .ok(201);
    ids.insert("t", str_of(&t, "id").to_owned());

    let a_href = format!("https://acme.topdesk.net/tas/api/branches/id/{a}");
    let a2_self = format!("{base}/balance-mutations/{}", ids["a2"]);
    let cases: Vec<(String, &str)> = vec![
        ("amountOfMinutes==600".into(), "a1 b3"),
        ("amountOfMinutes!=600".into(), "a2 a3 b1 b2 t"),
        ("amountOfMinutes=gt=0".into(), "a1 a2 b1 b3"),
        (
            "amountOfMinutes=ge=100;amountOfMinutes=le=300".into(),
            "a2 b1",
        ),
        ("amountOfMinutes=lt=0".into(), "a3 t"),
        ("amountOfMinutes=in=(100,300,-45)".into(), "a2 b1 t"),
        ("amountOfMinutes=out=(600,0)".into(), "a2 a3 b1 t"),
        ("modificationDate=ge=2026-02-01".into(), "a2 a3 b2 b3 t"),
        ("modificationDate=lt=2026-01-20T10:00:00Z".into(), "a1"),
        ("modificationDate==2026-01-20T11:00:00+01:00".into(), "b1"),
        (
            "modificationDate=le=2026-01-20T10:00:00.000+0000".into(),
            "a1 b1",
        ),
        ("on.type==INCIDENT".into(), "t"),
        ("on.type==EXTERNAL_SYSTEM".into(), "a1 a2 a3 b1 b2 b3"),
        ("on.type==EXTERNAL".into(), "a1 a2 a3 b1 b2 b3"),
        ("on.type=in=(SIMPLE_CHANGE,INCIDENT)".into(), "t"),
        ("on.type!=EXTERNAL_SYSTEM".into(), "t"),
        ("on.type=out=(INCIDENT)".into(), "a1 a2 a3 b1 b2 b3"),
        ("on.reference=sw=invoice".into(), "a1 a2 b3"),
        ("on.reference=='invoice 2026-01'".into(), "a1"),
        ("on.reference==\"invoice; 2026,03\"".into(), "b3"),
        (r#"on.reference=="it's \"quoted\"""#.into(), "b1"),
        (r#"on.reference=='it\'s "quoted"'"#.into(), "b1"),
        ("on.reference==null".into(), "b2"),
        ("on.reference!=null;amountOfMinutes=lt=0".into(), "a3 t"),
        ("on.reference=gt='invoice 2026-01'".into(), "a2 b1 b3"),
        ("on.referenceLink!=null".into(), "t"),
        (format!("on.referenceLink=={incident}"), "t"),
        ("on.referenceLink==null;amountOfMinutes=lt=0".into(), "a3"),
        (format!("_links.for.href=={a_href}"), "a1 a2 a3 t"),
        (
            format!(
                "_links.for.href==http://elsewhere.example/branches/{}",
                a.to_uppercase()
            ),
            "a1 a2 a3 t",
        ),
        (format!("_links.for.href!={a_href}"), "b1 b2 b3"),
        (
            "_links.for.href=sw=https://acme.topdesk.net/tas/".into(),
            "a1 a2 a3 b1 b2 b3 t",
        ),
        (format!("_links.for.id=={b}"), "b1 b2 b3"),
        (format!("_links.for.id=out=({b})"), "a1 a2 a3 t"),
        (
            format!("_links.for.id=in=({a},{b});amountOfMinutes==0"),
            "b2",
        ),
        (format!("_links.self.href=={a2_self}"), "a2"),
        (format!("id=in=({},{})", ids["a3"], ids["t"]), "a3 t"),
        ("_links.self.href==null".into(), ""),
        // AND binds tighter than OR; parentheses group.
        (
            "amountOfMinutes=gt=0;on.reference=sw=invoice,on.type==INCIDENT".into(),
            "a1 a2 b3 t",
        ),
        (
            format!("(amountOfMinutes==600,on.type==INCIDENT);_links.for.id=={a}"),
            "a1 t",
        ),
        (
            format!("_links.for.id=={a};(amountOfMinutes=lt=0,modificationDate=lt=2026-02-01)"),
            "a1 a3 t",
        ),
    ];
    for (query, expected) in &cases {
        let page = hal_ok(
            topdesk_list(
                &api,
                &[("query", query), ("compact", "false"), ("pageSize", "1000")],
            )
            .await,
            200,
        );
        let got: BTreeSet<String> = item_ids(&page).into_iter().collect();
        let want: BTreeSet<String> = expected
            .split_whitespace()
            .map(|l| ids[l].clone())
            .collect();
        let label = |set: &BTreeSet<String>| {
            let mut names: Vec<&str> = ids
                .iter()
                .filter(|(_, id)| set.contains(*id))
                .map(|(l, _)| *l)
                .collect();
            names.sort_unstable();
            names
        };
        assert_eq!(label(&got), label(&want), "query {query}");
        assert_eq!(page["total"], want.len(), "query {query}: {page}");
        // Links carry the query, so following them keeps the filter.
        let self_page = hal_ok(
            topdesk_follow(&api, page["_links"]["self"]["href"].as_str().unwrap()).await,
            200,
        );
        assert_eq!(
            item_ids(&self_page),
            item_ids(&page),
            "query {query} through its self link"
        );
    }

    // Malformed queries, unknown fields and wrong values: 400 saying where.
    let bad: [(&str, usize, &str); 12] = [
        ("amountOfMinutes=600", 15, "comparison operator"),
        ("colour==red", 0, "unknown field `colour`"),
        ("amountOfMinutes==sixty", 17, "integer"),
        ("amountOfMinutes=gt=1.5", 19, "integer"),
        ("modificationDate=gt=yesterday", 20, "ISO 8601"),
        ("on.type==EXTERN", 9, "one of"),
        ("on.type=sw=EXT", 7, "cannot be compared"),
        ("(amountOfMinutes==1", 19, "`)`"),
        ("amountOfMinutes==1;", 19, "field name"),
        ("on.reference=='open", 14, "not closed"),
        (
            "_links.for.href==https://x.example/branches/12",
            17,
            "ends in a UUID",
        ),
        ("_links.self.href=sw=http", 16, "can only be compared"),
    ];
    for (query, offset, needle) in bad {
        let r = topdesk_list(&api, &[("query", query)]).await;
        text_error(&r, 400, needle);
        assert!(r.text.starts_with("query: "), "{:?}", r.text);
        assert!(
            r.text.contains(&format!(" at {offset}: ")),
            "{query}: {:?}",
            r.text
        );
        // The caret stands under the spot at fault.
        let (line, caret) = r.text.split_once('\n').unwrap();
        let col = caret.chars().count() - 1;
        if let Some(c) = query[offset..].chars().next() {
            assert_eq!(
                line.chars().nth(col),
                Some(c),
                "{query}: caret misplaced in\n{}",
                r.text
            );
        }
    }
    // An empty query is no filter.
    let page = hal_ok(topdesk_list(&api, &[("query", "")]).await, 200);
    assert_eq!(page["total"], 7);
}

#[tokio::test]
async fn page_parameters_are_checked_at_their_limits() {
    let server = Server::start().await;
    let api = server.admin();
    let c = uuid();
    for i in 0..3 {
        topdesk_create(&api, &topdesk_dto(&c, None, i + 1, "2026-04-01", None)).await;
    }
    for (params, needle) in [
        (vec![("page", "0")], "page"),
        (vec![("page", "-1")], "page"),
        (vec![("page", "1000000001")], "page"),
        (vec![("page", "x")], "page"),
        (vec![("pageSize", "0")], "pageSize"),
        (vec![("pageSize", "1001")], "pageSize"),
        (vec![("compact", "maybe")], "compact"),
        (vec![("page", "1"), ("page", "2")], "page"),
    ] {
        text_error(&topdesk_list(&api, &params).await, 400, needle);
    }
    let page = hal_ok(topdesk_list(&api, &[("pageSize", "1000")]).await, 200);
    assert_eq!(page["total"], 3);
    // Parameters of the client's own (a cache-buster, a misspelling) are ignored.
    let page = hal_ok(
        topdesk_list(&api, &[("_", "1732528800"), ("pagesize", "5")]).await,
        200,
    );
    assert_eq!(page["total"], 3);
    let page = hal_ok(
        topdesk_list(&api, &[("page", "1000000000"), ("pageSize", "1000")]).await,
        200,
    );
    assert_eq!(item_ids(&page).len(), 0);

    // Page 2 of 3 with pageSize 1; then past the end.
    let base = topdesk_base(&api);
    let href = |p: u64| format!("{base}/balance-mutations?page={p}&pageSize=1");
    let page = hal_ok(
        topdesk_list(&api, &[("page", "2"), ("pageSize", "1")]).await,
        200,
    );
    assert_eq!(page["page"], 2);
    let links = &page["_links"];
    assert_eq!(links["self"]["href"], href(2));
    assert_eq!(links["first"]["href"], href(1));
    assert_eq!(links["last"]["href"], href(3));
    assert_eq!(links["prev"]["href"], href(1));
    assert_eq!(links["next"]["href"], href(3));
    let page = hal_ok(
        topdesk_list(&api, &[("page", "3"), ("pageSize", "1")]).await,
        200,
    );
    assert!(page["_links"].get("next").is_none(), "{page}");
    let page = hal_ok(
        topdesk_list(&api, &[("page", "9"), ("pageSize", "1")]).await,
        200,
    );
    assert_eq!(item_ids(&page).len(), 0);
    assert_eq!(page["_links"]["prev"]["href"], href(3));
    assert!(page["_links"].get("next").is_none(), "{page}");
    assert_eq!(page["_links"]["item"], json!([]));
    // An empty collection has one (empty) page.
    let (_, other) = api.create_tenant("empty-desk").await;
    let page = hal_ok(topdesk_list(&other, &[]).await, 200);
    assert_eq!(page["total"], 0);
    assert_eq!(
        page["_links"]["last"]["href"],
        page["_links"]["first"]["href"]
    );
    assert!(page["_links"].get("prev").is_none() && page["_links"].get("next").is_none());
}

#[tokio::test]
async fn next_links_walk_everything_while_mutations_are_added() {
    let server = Server::start().await;
    let api = server.admin();
    let customers: Vec<String> = (0..3).map(|_| uuid()).collect();
    let mut before = Vec::new();
    for i in 0..40 {
        let id = uuid();
        let c = &customers[i % customers.len()];
        topdesk_create(&api, &topdesk_dto(c, Some(&id), 10, "2026-08-01", None)).await;
        before.push(id);
    }

    // A writer adds mutations while a reader walks `next` from page 1, 7 at a time.
    let writer = {
        let (api, customers) = (api.clone(), customers.clone());
        tokio::spawn(async move {
            let mut added = Vec::new();
            for i in 0..60 {
                let id = uuid();
                let c = &customers[i % customers.len()];
                topdesk_create(&api, &topdesk_dto(c, Some(&id), -1, "2026-08-02", None)).await;
                added.push(id);
            }
            added
        })
    };
    let mut seen = Vec::new();
    let mut page = hal_ok(topdesk_list(&api, &[("pageSize", "7")]).await, 200);
    let mut pages = 1;
    loop {
        let items = item_ids(&page);
        assert!(items.len() <= 7);
        let links: Vec<String> = page["_links"]["item"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| last_segment(l["href"].as_str().unwrap()).to_owned())
            .collect();
        assert_eq!(links, items, "item links are the items' self links");
        seen.extend(items);
        let Some(next) = page["_links"].get("next") else {
            break;
        };
        page = hal_ok(
            topdesk_follow(&api, next["href"].as_str().unwrap()).await,
            200,
        );
        pages += 1;
        assert_eq!(page["page"], pages);
        assert!(pages < 1000, "the walk does not end");
    }
    let added = writer.await.unwrap();

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an item was repeated");
    assert_eq!(
        &seen[..before.len()],
        &before[..],
        "the first items, in order"
    );
    let mut added_seen = added.iter().filter(|id| unique.contains(id));
    // What the walk saw of the new mutations is a prefix of them, in order.
    for id in &seen[before.len()..] {
        assert_eq!(
            added_seen.next(),
            Some(id),
            "a new item was missed or out of order"
        );
    }

    // Afterwards one more walk sees all 100, and balances are the sums.
    let page = hal_ok(topdesk_list(&api, &[("pageSize", "1000")]).await, 200);
    let all = item_ids(&page);
    assert_eq!(all.len(), 100);
    assert_eq!(&all[..40], &before[..]);
    assert_eq!(&all[40..], &added[..]);
    for c in &customers {
        let query = format!("_links.for.id=={c}");
        let page = hal_ok(
            topdesk_list(&api, &[("query", &query), ("pageSize", "1000")]).await,
            200,
        );
        let sum: i64 = page["_embedded"]["item"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| int(m, "amountOfMinutes"))
            .sum();
        let acc = hal_ok(
            api.get(&format!("{TOPDESK_ROOT}/prepaid-services-accounts/{c}"))
                .await,
            200,
        );
        assert_eq!(int(&acc, "balance"), sum);
    }
}
