//! The Talkdesk dialect over the PostgreSQL store: the same filters, the same choice of
//! wallets, exact balances and paging as over the embedded store. The database is the
//! store's test database (`$PREPAID_TEST_DATABASE_URL`); see
//! `prepaid_store_postgres::testing` for what happens when there is none.

use crate::common;

use common::*;
use prepaid_store_postgres::{PgConfig, PgStore, testing};
use std::collections::BTreeSet;
use std::sync::Arc;

const ADMIN_SECRET: &str = "pp_talkdesk_postgres_admin";

#[tokio::test]
async fn filters_credits_and_paging_over_postgres() {
    let Some(schema) = testing::fresh_schema().await else {
        return;
    };
    let store = PgStore::connect(schema.url(), PgConfig::default())
        .await
        .expect("connect to the test schema");
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(Arc::new(store), dir.path(), ADMIN_SECRET).await;
    let admin = server.client(Auth::Bearer(ADMIN_SECRET.into()));

    admin.create_customer("acme").await;
    admin.create_customer("beta").await;
    let served: &[(&str, u8, &str, &str)] = &[
        ("fax", 4, "saas_licenses", "Talkdesk Fax"),
        ("saas", 4, "saas_licenses", "Saas Licenses"),
        ("quote", 2, "it's", "50% off_deal"),
        ("whole", 0, "Guardian", "AI realtime"),
    ];
    for (id, scale, name, product) in served {
        admin
            .create_product_wallet("acme", id, "CREDIT", *scale, name, product)
            .await;
        admin.top_up(id, 1234).await;
    }
    // Not Talkdesk wallets: another unit, a scale finer than credits, no product.
    admin
        .create_product_wallet("acme", "eur", "EUR", 2, "saas_licenses", "Fax")
        .await;
    admin
        .create_product_wallet("acme", "fine", "CREDIT", 6, "saas_licenses", "Fax")
        .await;
    admin.create_wallet("acme", "bare", "CREDIT", 4).await;
    admin
        .create_product_wallet("beta", "beta-fax", "CREDIT", 4, "saas_licenses", "Fax")
        .await;
    let (_, acme) = admin.create_key("td", &["read"], Some("acme")).await;

    let select = |filter: &'static str| {
        let acme = acme.clone();
        async move {
            let v = acme
                .talkdesk_list(&[("filter", filter), ("per_page", "100")])
                .await;
            let ids: BTreeSet<String> = check_talkdesk_list(&v)
                .iter()
                .map(talkdesk_wallet_id)
                .collect();
            assert_eq!(int(&v, "total"), ids.len() as i64, "{filter}");
            ids
        }
    };
    let set = |ids: &[&str]| -> BTreeSet<String> { ids.iter().map(|s| (*s).to_owned()).collect() };
    let cases: &[(&str, &[&str])] = &[
        ("", &["fax", "saas", "quote", "whole"]),
        ("name eq 'saas_licenses'", &["fax", "saas"]),
        (
            "name eq 'saas_licenses' and product_name eq 'Talkdesk Fax'",
            &["fax"],
        ),
        (
            "name eq 'saas_licenses' or contains(product_name, 'realtime')",
            &["fax", "saas", "whole"],
        ),
        (
            "not product_name eq 'Talkdesk Fax'",
            &["saas", "quote", "whole"],
        ),
        (
            "not (name eq 'saas_licenses' or name eq 'it''s')",
            &["whole"],
        ),
        ("name eq 'it''s'", &["quote"]),
        ("contains(product_name, '%')", &["quote"]),
        ("contains(product_name, 'f_d')", &["quote"]),
        ("contains(product_name, 'F_D')", &[]),
        ("name eq 'guardian'", &[]),
        (
            "(name eq 'Guardian' or name eq 'x') and not contains(product_name, 'Fax')",
            &["whole"],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(select(filter).await, set(want), "{filter}");
    }

    // Balances in credits, exactly, whatever the wallet's scale.
    let v = acme.talkdesk_list(&[]).await;
    let balances: Vec<(String, i64)> = check_talkdesk_list(&v)
        .iter()
        .map(|w| (talkdesk_wallet_id(w), int(w, "balance")))
        .collect();
    assert_eq!(
        balances,
        [
            ("fax".to_owned(), 1234),
            ("saas".to_owned(), 1234),
            ("quote".to_owned(), 123_400),
            ("whole".to_owned(), 12_340_000),
        ]
    );
    for id in ["eur", "fine", "bare", "beta-fax"] {
        acme.get(&format!("/account/wallets/{id}"))
            .await
            .talkdesk_error(404, "4040001");
    }

    // Paging by two, in creation order, keeping the filter.
    let mut seen = Vec::new();
    let mut page = acme
        .talkdesk_list(&[("per_page", "2"), ("filter", "not name eq 'x'")])
        .await;
    loop {
        seen.extend(check_talkdesk_list(&page).iter().map(talkdesk_wallet_id));
        match page["_links"]["next"]["href"].as_str() {
            Some(next) => page = acme.get_href(next).await.ok(200),
            None => break,
        }
    }
    assert_eq!(seen, ["fax", "saas", "quote", "whole"]);
    // The tenant's key sees the account it names, and must name one.
    let e = admin.talkdesk_get(&[]).await;
    assert_eq!(
        e.talkdesk_error(400, "4000002")["fields"][0]["name"],
        "account_id"
    );
    let acme_all = admin.talkdesk_list(&[("account_id", "acme")]).await;
    assert_eq!(int(&acme_all, "total"), 4);
    let beta = admin.talkdesk_list(&[("account_id", "beta")]).await;
    assert_eq!(int(&beta, "total"), 1);
    server.stop().await;
}
