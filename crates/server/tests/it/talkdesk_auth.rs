//! Who sees which Talkdesk wallets: bearer tokens and their scope, accounts (customers)
//! and tenants.

use crate::common;

use common::*;
use prepaid_ledger::{ApiKeyName, NewApiKey, Scopes, TenantId};
use prepaid_store::Store;
use std::sync::Arc;

const CHALLENGE_MISSING: &str = "Bearer realm=\"prepaid\", scope=\"account-wallets:read\"";
const CHALLENGE_INVALID: &str = "Bearer realm=\"prepaid\", error=\"invalid_token\"";

#[tokio::test]
async fn a_bearer_token_is_required() {
    let server = Server::start().await;
    let admin = server.admin();
    admin.create_customer("acme").await;
    admin
        .create_product_wallet("acme", "w", "CREDIT", 4, "saas_licenses", "Talkdesk Fax")
        .await;
    for path in ["/account/wallets", "/account/wallets/w"] {
        let r = server.anonymous().get(path).await;
        r.talkdesk_error(401, "4010001");
        assert_eq!(r.header("www-authenticate"), Some(CHALLENGE_MISSING));
        for auth in [
            Auth::Bearer("pp_not_a_key".into()),
            Auth::Raw("Bearer ".into()),
            Auth::Raw("Bearer".into()),
            // The operator's own valid credentials, but not as a bearer token.
            Auth::basic("admin", server.admin_secret()),
            Auth::Raw(format!("Token {}", server.admin_secret())),
        ] {
            let r = server.client(auth.clone()).get(path).await;
            r.talkdesk_error(401, "4010001");
            assert_eq!(
                r.header("www-authenticate"),
                Some(CHALLENGE_INVALID),
                "{auth:?}"
            );
        }
    }
    // Any key grants account-wallets:read: read, write and admin all imply it.
    for scope in ["read", "write", "admin"] {
        let (_, api) = admin
            .create_key(&format!("k-{scope}"), &[scope], None)
            .await;
        assert_eq!(
            int(&api.talkdesk_list(&[("account_id", "acme")]).await, "total"),
            1,
            "{scope}"
        );
        api.get("/account/wallets/w").await.ok(200);
    }
    // The scheme's name is case-insensitive.
    let r = server
        .client(Auth::Raw(format!("bearer {}", server.admin_secret())))
        .get("/account/wallets?account_id=acme")
        .await;
    r.ok(200);
}

/// A key without any scope cannot be made through the API; it is put in the store
/// directly, and the server runs in this process.
#[tokio::test]
async fn a_token_without_the_scope_is_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let store = prepaid_store_sqlite::SqliteStore::open(dir.path()).unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let secret = "pp_no_scopes_at_all";
    let tenant = TenantId::parse(prepaid_server::OPERATOR_TENANT).unwrap();
    let key = NewApiKey {
        name: ApiKeyName::parse("nothing").unwrap(),
        secret_sha256: prepaid_edge::auth::secret_digest(secret),
        scopes: Scopes::default(),
        customer: None,
    };
    let now = prepaid_ledger::Timestamp::from_secs(1_800_000_000);
    assert!(store.bootstrap(&tenant, key, now).await.unwrap());
    let server = InProcess::start(store, dir.path(), "pp_never_used_admin_secret").await;
    let api = server.client(Auth::Bearer(secret.into()));
    for path in ["/account/wallets", "/account/wallets/w"] {
        let r = api.get(path).await;
        r.talkdesk_error(403, "4030001");
        assert_eq!(
            r.header("www-authenticate"),
            Some(
                "Bearer realm=\"prepaid\", error=\"insufficient_scope\", \
                 scope=\"account-wallets:read\""
            )
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn an_account_key_sees_its_own_account_only() {
    let server = Server::start().await;
    let admin = server.admin();
    for (customer, wallet) in [("acme", "w-acme"), ("beta", "w-beta")] {
        admin.create_customer(customer).await;
        admin
            .create_product_wallet(customer, wallet, "CREDIT", 4, "saas_licenses", "Fax")
            .await;
        admin.top_up(wallet, 100).await;
    }
    let (_, acme) = admin.create_key("td-acme", &["read"], Some("acme")).await;
    let listed = |v: &serde_json::Value| -> Vec<(String, String)> {
        check_talkdesk_list(v)
            .iter()
            .map(|w| (talkdesk_wallet_id(w), str_of(w, "account_id").to_owned()))
            .collect()
    };
    let own = [("w-acme".to_owned(), "acme".to_owned())];
    assert_eq!(listed(&acme.talkdesk_list(&[]).await), own);
    assert_eq!(
        listed(&acme.talkdesk_list(&[("account_id", "acme")]).await),
        own
    );
    // Another account is empty to it, and its wallets are absent.
    let other = acme.talkdesk_list(&[("account_id", "beta")]).await;
    assert_eq!((int(&other, "total"), int(&other, "count")), (0, 0));
    let nobody = acme.talkdesk_list(&[("account_id", "nobody")]).await;
    assert_eq!(int(&nobody, "total"), 0);
    acme.get("/account/wallets/w-beta")
        .await
        .talkdesk_error(404, "4040001");
    acme.get("/account/wallets/w-acme").await.ok(200);
    let filtered = acme
        .talkdesk_list(&[("filter", "name eq 'saas_licenses'")])
        .await;
    assert_eq!(listed(&filtered), own);

    // The tenant's key sees the account it names.
    let acme_only = listed(&admin.talkdesk_list(&[("account_id", "acme")]).await);
    assert_eq!(acme_only, own);
    let beta = listed(&admin.talkdesk_list(&[("account_id", "beta")]).await);
    assert_eq!(beta, [("w-beta".to_owned(), "beta".to_owned())]);
    let none = admin.talkdesk_list(&[("account_id", "nobody")]).await;
    assert_eq!(int(&none, "total"), 0);
    admin.get("/account/wallets/w-beta").await.ok(200);
}

/// A key of the whole tenant must name the account to list, so that no single call
/// lists every account's wallets; reading one wallet by id needs no account.
#[tokio::test]
async fn a_tenant_key_must_name_the_account_to_list() {
    let server = Server::start().await;
    let admin = server.admin();
    for (customer, wallet) in [("acme", "w-acme"), ("beta", "w-beta")] {
        admin.create_customer(customer).await;
        admin
            .create_product_wallet(customer, wallet, "CREDIT", 4, "saas_licenses", "Fax")
            .await;
    }
    let (_, reader) = admin.create_key("td-tenant", &["read"], None).await;
    for api in [&admin, &reader] {
        for params in [
            &[][..],
            &[("filter", "name eq 'saas_licenses'"), ("page", "1")][..],
        ] {
            let r = api.talkdesk_get(params).await;
            let e = r.talkdesk_error(400, "4000002");
            assert_eq!(e["fields"].as_array().map(Vec::len), Some(1), "{e}");
            assert_eq!(e["fields"][0]["name"], "account_id", "{e}");
            assert!(str_of(e, "description").contains("account_id"), "{e}");
        }
        let v = api.talkdesk_list(&[("account_id", "beta")]).await;
        assert_eq!(int(&v, "total"), 1);
        api.get("/account/wallets/w-acme").await.ok(200);
    }
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let server = Server::start().await;
    let operator = server.admin();
    let (_, other) = operator.create_tenant("other").await;
    // The same customer and wallet ids in both tenants.
    for (api, product) in [(&operator, "Operator's"), (&other, "Other's")] {
        api.create_customer("acme").await;
        api.create_product_wallet("acme", "shared", "CREDIT", 4, "saas_licenses", product)
            .await;
    }
    operator
        .create_product_wallet("acme", "only-operator", "CREDIT", 4, "n", "p")
        .await;
    operator.top_up("shared", 5).await;
    for (api, product, total, balance) in
        [(&operator, "Operator's", 2, 5), (&other, "Other's", 1, 0)]
    {
        let v = api.talkdesk_list(&[("account_id", "acme")]).await;
        assert_eq!(int(&v, "total"), total);
        let w = api.get("/account/wallets/shared").await.ok(200);
        assert_eq!(str_of(&w, "product_name"), product);
        assert_eq!(int(&w, "balance"), balance);
        let (_, key) = api.create_key("td", &["read"], Some("acme")).await;
        let w = key.get("/account/wallets/shared").await.ok(200);
        assert_eq!(str_of(&w, "product_name"), product);
    }
    other
        .get("/account/wallets/only-operator")
        .await
        .talkdesk_error(404, "4040001");
    let filtered = other
        .talkdesk_list(&[("filter", "name eq 'n'"), ("account_id", "acme")])
        .await;
    assert_eq!(int(&filtered, "total"), 0);
}
