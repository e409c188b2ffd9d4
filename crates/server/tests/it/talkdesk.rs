//! The Talkdesk dialect from the outside: the document's filter examples, every
//! operator, balances in credits, the single wallet, and the errors of bad requests.

use crate::common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The wallets of account `acme` the filter examples run against: id, name, product.
const WALLETS: &[(&str, &str, &str)] = &[
    ("w-saas", "saas_licenses", "Saas Licenses"),
    ("w-fax", "saas_licenses", "Talkdesk Fax"),
    ("w-guardian", "guardian", "Talkdesk Guardian"),
    ("w-batch", "ai_premium_batch", "AI Premium"),
    ("w-realtime", "ai_voice", "AI realtime voice"),
    ("w-usage", "product_usage", "product_usage"),
    ("w-digital", "digital_engagement", "Saas Licenses digital"),
    (
        "w-consumption",
        "saas_consumption",
        "SaaS Consumption-Licensing",
    ),
    ("w-standard", "voice", "Voice standard"),
];

/// A server with account `acme` holding [`WALLETS`] (each topped up by its position),
/// and a bearer client restricted to that account.
async fn account() -> (Server, Api) {
    let server = Server::start().await;
    let admin = server.admin();
    admin.create_customer("acme").await;
    for (i, (id, name, product)) in WALLETS.iter().enumerate() {
        admin
            .create_product_wallet("acme", id, "CREDIT", 4, name, product)
            .await;
        admin.top_up(id, (i as i64 + 1) * 10_000).await;
    }
    let (_, acme) = admin
        .create_key("talkdesk-acme", &["read"], Some("acme"))
        .await;
    (server, acme)
}

/// The ids of every wallet of account `acme` the filter selects (one page holds them
/// all). Naming the account lets a tenant key list as well as the account's own.
async fn select(api: &Api, filter: &str) -> BTreeSet<String> {
    let v = api
        .talkdesk_list(&[
            ("filter", filter),
            ("per_page", "100"),
            ("account_id", "acme"),
        ])
        .await;
    let wallets = check_talkdesk_list(&v);
    assert_eq!(int(&v, "total"), wallets.len() as i64, "{filter}: {v}");
    wallets.iter().map(talkdesk_wallet_id).collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn all_but(excluded: &[&str]) -> BTreeSet<String> {
    WALLETS
        .iter()
        .map(|w| w.0)
        .filter(|id| !excluded.contains(id))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_documents_examples_give_the_documented_wallets() {
    let (_server, acme) = account().await;
    let cases: &[(&str, &[&str])] = &[
        ("name eq 'product_usage'", &["w-usage"]),
        (
            "product_name eq 'SaaS Consumption-Licensing'",
            &["w-consumption"],
        ),
        ("contains(product_name, 'standard')", &["w-standard"]),
        ("name eq 'saas_licenses'", &["w-saas", "w-fax"]),
        (
            "name eq 'saas_licenses' and product_name eq 'Talkdesk Fax'",
            &["w-fax"],
        ),
        (
            "name eq 'saas_licenses' or product_name eq 'Talkdesk Fax'",
            &["w-saas", "w-fax"],
        ),
        ("name eq 'guardian'", &["w-guardian"]),
        (
            "(name eq 'saas_licenses' and product_name eq 'Talkdesk Fax') or name eq 'guardian'",
            &["w-fax", "w-guardian"],
        ),
        (
            "name eq 'saas_licenses' and (product_name eq 'Talkdesk Fax' or name eq 'guardian')",
            &["w-fax"],
        ),
        (
            "name eq 'ai_premium_batch' or contains(product_name, 'realtime')",
            &["w-batch", "w-realtime"],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(select(&acme, filter).await, ids(want), "{filter}");
    }
    assert_eq!(
        select(&acme, "not product_name eq 'product_usage'").await,
        all_but(&["w-usage"])
    );
}

#[tokio::test]
async fn the_documents_first_example_has_an_unclosed_parenthesis() {
    let (_server, acme) = account().await;
    let filter = "product_name eq 'Saas Licenses' and (name eq 'saas_licenses' and \
                  contains(product_name, 'digital')";
    let r = acme.talkdesk_get(&[("filter", filter)]).await;
    let e = r.talkdesk_error(400, "4000001");
    let d = str_of(e, "description");
    assert!(
        d.contains(&format!("at position {}", filter.len())),
        "the position of the end: {d}"
    );
    assert!(
        d.contains("the parenthesis at position 36 is not closed"),
        "{d}"
    );
    assert_eq!(e["fields"], json!([{"name": "filter", "description": d}]));
    // Closed at its end, it asks for all three at once, which no wallet here has; the
    // reading its prose gives groups the first two instead.
    let closed = format!("{filter})");
    assert_eq!(select(&acme, &closed).await, ids(&[]));
    let prose = "(product_name eq 'Saas Licenses' and name eq 'saas_licenses') or \
                 contains(product_name, 'digital')";
    assert_eq!(select(&acme, prose).await, ids(&["w-saas", "w-digital"]));
}

#[tokio::test]
async fn every_operator_with_not_quotes_and_case() {
    let server = Server::start().await;
    let admin = server.admin();
    admin.create_customer("acme").await;
    let wallets: &[(&str, &str, &str)] = &[
        ("q1", "it's", "O'Brien's plan"),
        ("q2", "plain", "50% off_deal"),
        ("q3", "Plain", "a+b & c"),
        ("q4", "''", "quotes ''"),
        ("q5", "ünï", "日本 credits"),
    ];
    for (id, name, product) in wallets {
        admin
            .create_product_wallet("acme", id, "CREDIT", 4, name, product)
            .await;
    }
    let all: BTreeSet<String> = wallets.iter().map(|w| w.0.to_owned()).collect();
    let without = |drop: &[&str]| -> BTreeSet<String> {
        all.iter()
            .filter(|id| !drop.contains(&id.as_str()))
            .cloned()
            .collect()
    };
    let cases: Vec<(&str, BTreeSet<String>)> = vec![
        ("name eq 'it''s'", ids(&["q1"])),
        ("contains(product_name, '''s')", ids(&["q1"])),
        ("name eq ''''''", ids(&["q4"])),
        ("contains(name, '''')", ids(&["q1", "q4"])),
        // Case-sensitive, exact, and no wildcards.
        ("name eq 'plain'", ids(&["q2"])),
        ("name eq 'Plain'", ids(&["q3"])),
        ("name eq 'plai'", ids(&[])),
        ("contains(product_name, '50%')", ids(&["q2"])),
        ("contains(product_name, '%')", ids(&["q2"])),
        ("contains(product_name, 'f_d')", ids(&["q2"])),
        ("contains(product_name, 'off deal')", ids(&[])),
        ("contains(product_name, 'a+b & c')", ids(&["q3"])),
        ("contains(name, 'lain')", ids(&["q2", "q3"])),
        ("contains(name, 'LAIN')", ids(&[])),
        ("name eq 'ünï'", ids(&["q5"])),
        ("contains(product_name, '本')", ids(&["q5"])),
        // not, alone, doubled, over groups, with and/or precedence.
        ("not name eq 'plain'", without(&["q2"])),
        ("not not name eq 'plain'", ids(&["q2"])),
        ("not contains(name, 'lain')", without(&["q2", "q3"])),
        (
            "not (name eq 'plain' or name eq 'Plain')",
            without(&["q2", "q3"]),
        ),
        (
            "not name eq 'plain' and contains(name, 'lain')",
            ids(&["q3"]),
        ),
        (
            "name eq 'it''s' or name eq 'plain' and product_name eq 'nothing'",
            ids(&["q1"]),
        ),
        (
            "(name eq 'it''s' or name eq 'plain') and contains(product_name, 'off')",
            ids(&["q2"]),
        ),
        (
            "  name   eq\t'plain'  or\r\nname eq 'Plain' ",
            ids(&["q2", "q3"]),
        ),
    ];
    for (filter, want) in &cases {
        assert_eq!(&select(&admin, filter).await, want, "{filter}");
    }
    // The form encoding's `+` for a space works as well as %20.
    let r = admin
        .get("/account/wallets?filter=name+eq+%27plain%27&account_id=acme")
        .await
        .ok(200);
    let got: Vec<String> = check_talkdesk_list(&r)
        .iter()
        .map(talkdesk_wallet_id)
        .collect();
    assert_eq!(got, ["q2"]);
    // An empty filter is no filter.
    assert_eq!(
        int(
            &admin
                .talkdesk_list(&[("filter", ""), ("account_id", "acme")])
                .await,
            "total"
        ),
        5
    );
}

#[tokio::test]
async fn bad_filters_are_400_with_the_position() {
    let (_server, acme) = account().await;
    let cases: &[(&str, &str)] = &[
        ("name eq 'x", "quoted value is not closed at position 8"),
        ("name ne 'x'", "at position 5"),
        ("nom eq 'x'", "unknown field `nom` at position 0"),
        (
            "balance eq '10000'",
            "unknown field `balance` at position 0",
        ),
        (
            "account_id eq 'acme'",
            "unknown field `account_id` at position 0",
        ),
        ("name eq x", "at position 8"),
        ("name eq \"x\"", "at position 8"),
        ("contains(name 'x')", "at position 14"),
        ("contains(name, x)", "at position 15"),
        ("name eq 'a' and", "at position 15"),
        ("name eq 'a' or or name eq 'b'", "at position 15"),
        ("(name eq 'a'))", "at position 13"),
        ("not", "at position 3"),
        ("NAME eq 'a'", "unknown field `NAME` at position 0"),
        ("name EQ 'a'", "at position 5"),
        (
            "name eq 'é' and x eq 'y'",
            "unknown field `x` at position 16",
        ),
        (" ", "at position 1"),
    ];
    for (filter, want) in cases {
        let r = acme.talkdesk_get(&[("filter", filter)]).await;
        let e = r.talkdesk_error(400, "4000001");
        let d = str_of(e, "description");
        assert!(
            d.contains(want),
            "{filter:?}: {d:?} should contain {want:?}"
        );
        assert_eq!(e["fields"][0]["name"], "filter", "{filter}");
    }
}

#[tokio::test]
async fn filter_limits_at_the_bound() {
    let (_server, acme) = account().await;
    let max = prepaid_query::QUERY_LEN_MAX;
    // Exactly at the length limit: accepted.
    let mut at = "name eq 'guardian'".to_owned();
    at.push_str(&" ".repeat(max - at.len()));
    assert_eq!(select(&acme, &at).await, ids(&["w-guardian"]));
    let over = format!("{at} ");
    let r = acme.talkdesk_get(&[("filter", &over)]).await;
    let d = str_of(r.talkdesk_error(400, "4000001"), "description").to_owned();
    assert!(d.contains(&format!("longer than {max} bytes")), "{d}");
    // Nesting exactly at the depth limit, and one past it.
    let depth = prepaid_query::DEPTH_MAX;
    let nested = |n: usize| format!("{}name eq 'guardian'{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(select(&acme, &nested(depth)).await, ids(&["w-guardian"]));
    let r = acme.talkdesk_get(&[("filter", &nested(depth + 1))]).await;
    let d = str_of(r.talkdesk_error(400, "4000001"), "description").to_owned();
    assert!(d.contains(&format!("deeper than {depth}")), "{d}");
    // As many comparisons as allowed, and one more.
    let terms = prepaid_query::TERMS_MAX;
    let many = |n: usize| vec!["name eq 'guardian'"; n].join(" or ");
    assert_eq!(select(&acme, &many(terms)).await, ids(&["w-guardian"]));
    let r = acme.talkdesk_get(&[("filter", &many(terms + 1))]).await;
    r.talkdesk_error(400, "4000001");
    // A value of the longest length, and one byte more.
    let value_max = prepaid_query::VALUE_LEN_MAX;
    let long = |n: usize| format!("name eq '{}'", "x".repeat(n));
    assert_eq!(select(&acme, &long(value_max)).await, ids(&[]));
    let r = acme.talkdesk_get(&[("filter", &long(value_max + 1))]).await;
    r.talkdesk_error(400, "4000001");
}

#[tokio::test]
async fn balances_are_exact_credits_and_only_credit_wallets_are_served() {
    let server = Server::start().await;
    let admin = server.admin();
    admin.create_customer("acme").await;
    let wallet = |id: &'static str, unit: &'static str, scale: u8| {
        let admin = admin.clone();
        async move {
            admin
                .create_product_wallet("acme", id, unit, scale, id, "Product")
                .await
        }
    };
    wallet("c4", "CREDIT", 4).await;
    wallet("c2", "CREDIT", 2).await;
    wallet("c0", "CREDIT", 0).await;
    wallet("c5", "CREDIT", 5).await;
    wallet("eur", "EUR", 2).await;
    wallet("min", "MIN", 0).await;
    admin
        .post(
            "/v1/customers/acme/wallets",
            &json!({"id": "neg", "unit": "CREDIT", "scale": 2, "name": "neg",
                "product": "Product", "floor": -10_000}),
        )
        .await
        .ok(201);
    admin
        .post(
            "/v1/customers/acme/wallets",
            &json!({"id": "noproduct", "unit": "CREDIT", "scale": 4, "name": "noproduct"}),
        )
        .await
        .ok(201);
    admin
        .post(
            "/v1/customers/acme/wallets",
            &json!({"id": "noname", "unit": "CREDIT", "scale": 4, "product": "Product"}),
        )
        .await
        .ok(201);
    for id in ["c4", "c2", "c0", "c5", "eur", "min", "noproduct", "noname"] {
        admin.top_up(id, 123_456).await;
    }
    admin.debit("c4", 6).await;
    admin.debit("neg", 5_050).await;
    // A credit past what i64 holds in credits is refused at the wallet's ceiling
    // (Java's long and JavaScript's integers could not read it); up to it is taken.
    let bound =
        prepaid_ledger::credits_ceiling(&prepaid_ledger::Unit::new("CREDIT", 0).unwrap()).unwrap();
    admin
        .mutate("c0", "top_up", AMOUNT_MAX)
        .await
        .problem(422, "ceiling_exceeded");
    admin.top_up("c0", bound - 123_456).await;

    let v = admin.talkdesk_list(&[("account_id", "acme")]).await;
    let wallets = check_talkdesk_list(&v);
    let got: Vec<(String, String)> = wallets
        .iter()
        .map(|w| (talkdesk_wallet_id(w), w["balance"].to_string()))
        .collect();
    let big = (i128::from(bound) * 10_000).to_string();
    assert!(i128::from(bound) * 10_000 <= i128::from(i64::MAX));
    assert_eq!(
        got,
        [
            ("c4".to_owned(), "123450".to_owned()),
            ("c2".to_owned(), "12345600".to_owned()),
            ("c0".to_owned(), big.clone()),
            ("neg".to_owned(), "-505000".to_owned()),
        ]
    );
    assert_eq!(int(&v, "total"), 4);
    // The raw answer carries the big balance as an exact integer literal.
    let raw = admin.talkdesk_get(&[("account_id", "acme")]).await;
    assert!(
        raw.text.contains(&format!("\"balance\":{big}")),
        "{}",
        raw.text
    );
    // Wallets this dialect does not serve are absent by id as well.
    for id in ["c5", "eur", "min", "noproduct", "noname"] {
        admin
            .get(&format!("/account/wallets/{id}"))
            .await
            .talkdesk_error(404, "4040001");
    }
    let one = admin.get("/account/wallets/c2").await.ok(200);
    check_talkdesk_wallet(&one);
    assert_eq!(one["balance"], json!(12_345_600));
}

#[tokio::test]
async fn a_single_wallet_is_the_list_item_and_its_href_leads_to_it() {
    let server = Server::start().await;
    let admin = server.admin();
    admin.create_customer("acme").await;
    // An id with characters that need escaping in a URL.
    let odd = "w+1'x&y=z";
    admin
        .create_product_wallet("acme", odd, "CREDIT", 4, "saas_licenses", "Talkdesk Fax")
        .await;
    admin.top_up(odd, 42).await;
    let v = admin.talkdesk_list(&[("account_id", "acme")]).await;
    let listed = check_talkdesk_list(&v).remove(0);
    assert_eq!(talkdesk_wallet_id(&listed), odd);
    let href = str_of(&listed["_links"]["self"], "href").to_owned();
    assert!(
        href.starts_with(&format!("{}/account/wallets/", server.base())),
        "{href}"
    );
    let one = admin.get_href(&href).await.ok(200);
    assert_eq!(one, listed);
    check_talkdesk_wallet(&one);
    assert_eq!(
        one,
        json!({"name": "saas_licenses", "product_name": "Talkdesk Fax", "balance": 42,
            "account_id": "acme", "created_at": listed["created_at"],
            "updated_at": listed["updated_at"], "_links": {"self": {"href": href}}})
    );
    // The times are the wallet's own: `updated_at` is the top-up's, as the native API
    // says too.
    let native = admin.wallet(odd).await;
    assert_eq!(one["created_at"], native["created_at"]);
    assert_eq!(one["updated_at"], native["updated_at"]);
    let mutations = admin.mutations(odd).await;
    assert_eq!(mutations.len(), 1);
    assert_eq!(one["updated_at"], mutations[0]["recorded_at"]);
    // Same-format times compare as text.
    assert!(str_of(&one, "updated_at") >= str_of(&one, "created_at"));
    // Ids that name no wallet, or cannot name one.
    for path in [
        "/account/wallets/nope".to_owned(),
        format!("/account/wallets/{}", "w".repeat(ID_LEN_MAX + 1)),
        "/account/wallets/%FF".to_owned(),
    ] {
        admin.get(&path).await.talkdesk_error(404, "4040001");
    }
}

#[tokio::test]
async fn routes_and_parameters_answer_in_talkdesks_shape() {
    let (server, acme) = account().await;
    let api = server.admin();
    use reqwest::Method;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let r = api
            .send(method.clone(), "/account/wallets", &[], None)
            .await;
        r.talkdesk_error(405, "4050001");
        let r = api.send(method, "/account/wallets/w-fax", &[], None).await;
        r.talkdesk_error(405, "4050001");
    }
    api.get("/account/nothing")
        .await
        .talkdesk_error(404, "4040002");
    api.get("/account/wallets/w-fax/more")
        .await
        .talkdesk_error(404, "4040002");
    let cases: &[(&str, &str)] = &[
        ("page=0", "page"),
        ("page=x", "page"),
        ("page=-1", "page"),
        ("page=100001", "page"),
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
        ("per_page=ten", "per_page"),
        ("page=1&page=2", "page"),
        ("per_page=1&per_page=1", "per_page"),
        ("filter=&filter=", "filter"),
        ("account_id=a&account_id=a", "account_id"),
        ("account_id=", "account_id"),
        ("account_id=%2F", "account_id"),
    ];
    for (query, field) in cases {
        let r = acme.get(&format!("/account/wallets?{query}")).await;
        let e = r.talkdesk_error(400, "4000002");
        assert_eq!(e["fields"][0]["name"], *field, "{query}");
        assert!(e["description"].is_string(), "{query}");
    }
    // Unknown parameters are ignored.
    let v = acme.get("/account/wallets?limit=1&sort=name").await.ok(200);
    assert_eq!(int(&v, "count"), WALLETS.len() as i64);
    let long = format!("/account/wallets?x={}", "y".repeat(16 * 1024));
    acme.get(&long).await.talkdesk_error(400, "4000002");
    // The native API is untouched by the dialect.
    let w: Value = acme.wallet("w-fax").await;
    assert_eq!(str_of(&w, "unit"), "CREDIT");
}
