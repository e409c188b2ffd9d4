//! Bytes that are not UTF-8 once percent-decoded, in a query string or a form body,
//! are refused with the dialect's own 400 answer naming the parameter, never replaced
//! by U+FFFD and served; text that is UTF-8 (`é` as `%C3%A9`) still passes.

use crate::common;
use crate::icrtouch_support;

use common::*;
use icrtouch_support::*;
use serde_json::json;

const NOT_UTF8: &str = "is not UTF-8 text once percent-decoded";

#[tokio::test]
async fn touchtopup_refuses_it_in_query_strings_and_form_bodies() {
    let (_server, _admin, ttu) = fixture().await;
    let r = ttu
        .get("/accounts/customer_balance/coid/1?custid=5&x=%FF")
        .await;
    fail0(&r, 400, &format!("x: {NOT_UTF8}"));
    let r = ttu
        .post_form_raw("/users/user_create", "firstname=J%E9r%F4me&surname=S")
        .await;
    fail0(&r, 400, &format!("firstname: {NOT_UTF8}"));
    // In XML too.
    let r = ttu
        .get("/accounts/customer_balance/coid/1/format/xml?custid=%C3")
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text.contains("<status>0</status>") && r.text.contains(NOT_UTF8),
        "{}",
        r.text
    );
    // UTF-8 text is served.
    let created = ok1(ttu
        .post_form_raw(
            "/users/user_create",
            "firstname=J%C3%A9r%C3%B4me&surname=S&email=j%40example.com&password=long+enough+1",
        )
        .await);
    let uid = created["user"].as_str().unwrap().to_owned();
    let details = ok1(ttu.get(&format!("/users/user_details/uid/{uid}")).await);
    assert_eq!(details["user"]["firstname"], "Jérôme");
}

#[tokio::test]
async fn topdesk_refuses_it_in_query() {
    let server = Server::start().await;
    let admin = server.admin();
    let path = "/services/prepaid-services-backend/balance-mutations";
    let r = admin
        .get(&format!("{path}?query=on.reference==%27caf%E9%27"))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.content_type().starts_with("text/plain"),
        "{}",
        r.content_type()
    );
    assert_eq!(r.text, format!("query: {NOT_UTF8}"));
    let r = admin
        .get(&format!("{path}?query=on.reference==%27caf%C3%A9%27"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn talkdesk_refuses_it_in_filter_and_other_parameters() {
    let server = Server::start().await;
    let admin = server.admin();
    admin.create_customer("acme").await;
    let r = admin
        .get("/account/wallets?account_id=acme&filter=name+eq+%27caf%E9%27")
        .await;
    let e = r.talkdesk_error(400, "4000001");
    assert_eq!(e["fields"][0]["name"], "filter", "{e}");
    assert!(r.text.contains(NOT_UTF8), "{}", r.text);
    let r = admin.get("/account/wallets?account_id=acm%FF").await;
    r.talkdesk_error(400, "4000002");
    assert!(r.text.contains(NOT_UTF8), "{}", r.text);
    let r = admin
        .get("/account/wallets?account_id=acme&filter=name+eq+%27caf%C3%A9%27")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["total"], json!(0));
}

#[tokio::test]
async fn the_native_api_refuses_it_in_list_queries() {
    let server = Server::start().await;
    let r = server.admin().get("/v1/wallets?customer_id=%FF").await;
    let p = r.problem(400, "invalid_request");
    assert!(p["detail"].as_str().unwrap_or("").contains(NOT_UTF8), "{p}");
}

#[tokio::test]
async fn tmf_refuses_it_in_list_queries() {
    let server = Server::start().await;
    let admin = server.admin();
    for mount in [
        "/tmf-api/prepayBalanceManagement/v4",
        "/brm/prepayBalanceManagement/v4",
    ] {
        for (query, name) in [
            ("partyAccount.id=caf%E9", "partyAccount.id"),
            ("fields=id&limit=1%FF", "limit"),
            ("name%C3=x", "name\u{FFFD}"),
        ] {
            let r = admin.get(&format!("{mount}/bucket?{query}")).await;
            assert_eq!(r.status, 400, "{query}: {}", r.text);
            let e = &r.json;
            assert_eq!(e["@type"], "Error", "{e}");
            assert_eq!(e["status"], "400", "{e}");
            assert_eq!(e["code"], "invalid_query", "{e}");
            let message = e["message"].as_str().unwrap_or_default();
            assert_eq!(message, format!("{name}: {NOT_UTF8}"), "{e}");
        }
        // UTF-8 text is served.
        let r = admin
            .get(&format!("{mount}/bucket?partyAccount.id=caf%C3%A9"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json, json!([]));
    }
}
