//! The isolation matrix of the TouchTopUp dialect, generated from its route table (so a
//! new method is covered without editing this test): every method, with every HTTP
//! method it takes, is called with a key of another company naming company 1's
//! objects (its company, customer, user, wallet, charge, transaction, payment token,
//! link key and reset code), and every write method with a read-only key. None may
//! answer 2xx, and afterwards company 1's data is as it was; the same parameters with
//! company 1's own key are answered by every read method.
//!
//! The other dialects' route tables are walked in `isolation_matrix`.

use crate::common::percent_encode;
use crate::icrtouch_support;

use icrtouch_support::*;
use prepaid_dialect_touchtopup::route_table;
use serde_json::Value;

const VICTIM: &str = "victim@example.com";
const PASSWORD: &str = "Victims-Password-1";

/// What company 1 looks like through its own key.
async fn company_1(school1: &Ttu, uid: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        "/accounts/customer_balance/coid/1/custid/5".to_owned(),
        "/accounts/transaction_history/coid/1/custid/5".to_owned(),
        "/accounts/payment_history/coid/1/custid/5".to_owned(),
        "/wallets/wallet_list/coid/1".to_owned(),
        "/wallets/customer_wallet_details/coid/1/cid/5/wallet/1".to_owned(),
        format!("/users/user_details/uid/{uid}"),
    ] {
        let mut answer = ok1(school1.get(&path).await);
        // When the balance was last read is not part of the data.
        if let Some(b) = answer.get_mut("balance") {
            b["LAST_UPDATE"] = Value::Null;
        }
        seen.push(answer);
    }
    seen
}

#[tokio::test]
async fn no_touchtopup_method_reaches_another_company_or_writes_with_a_read_key() {
    let (server, admin, _portal) = fixture().await;
    put_company(&admin, 2, "Other School", "20").await;
    put_customer(&admin, 2, 7, "Ms", "Ann", "Other", "7").await;
    let key5 = put_customer(&admin, 1, 5, "Mr", "John", "Smith", "54321").await["link_key"]
        .as_str()
        .unwrap()
        .to_owned();
    admin.top_up("1.5", 1000).await;
    let school1 = company_key(&server, &admin, "school-1", 1).await;
    let school2 = company_key(&server, &admin, "school-2", 2).await;
    let (reader, _) = admin.create_key("reader", &["read"], None).await;
    let reader = Ttu::new(&server, reader["secret"].as_str());

    // Company 1's objects: a user linked to customer 5 with a pending reset code, a
    // wallet with the customer and a charge, a started payment.
    let uid = ok1(school1
        .post_form(
            "/users/user_create",
            &[
                ("firstname", "Vic"),
                ("surname", "Tim"),
                ("email", VICTIM),
                ("password", PASSWORD),
            ],
        )
        .await)["user"]
        .as_str()
        .unwrap()
        .to_owned();
    ok1(school1
        .post_form(
            "/users/user_link_account",
            &[("uid", uid.as_str()), ("linkkey", key5.as_str())],
        )
        .await);
    let code = ok1(school1
        .get(&format!("/users/user_forgot_password/email/{VICTIM}"))
        .await)["resetcode"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, fields) in [
        (
            "/wallets/wallet_create",
            &[
                ("coid", "1"),
                ("name", "Trip"),
                ("type", "0"),
                ("paybydate", "2030-09-01"),
                ("purposedate", "2030-09-30"),
                ("allowoverpay", "1"),
            ][..],
        ),
        (
            "/wallets/wallet_add_customer",
            &[("coid", "1"), ("wallet", "1"), ("custid", "5")][..],
        ),
        (
            "/wallets/wallet_add_charge",
            &[
                ("coid", "1"),
                ("wallet", "1"),
                ("charge", "2.00"),
                ("duedate", "2030-07-31"),
            ][..],
        ),
    ] {
        ok1(school1.post_form(path, fields).await);
    }
    let token = ok1(school1
        .get("/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/5.00")
        .await)["response"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = company_1(&school1, &uid).await;

    // Every parameter any method reads, naming company 1's objects.
    let params: Vec<(&str, &str)> = vec![
        ("coid", "1"),
        ("cid", "1"),
        ("custid", "5"),
        ("uid", &uid),
        ("wallet", "1"),
        ("chargeid", "1"),
        ("tid", "1"),
        ("pmttype", "1"),
        ("amt", "1.00"),
        ("charge", "1.00"),
        ("duedate", "2030-08-01"),
        ("customers", "5"),
        ("name", "Renamed"),
        ("type", "0"),
        ("paybydate", "2030-09-01"),
        ("purposedate", "2030-09-30"),
        ("email", VICTIM),
        ("username", VICTIM),
        ("password", PASSWORD),
        ("firstname", "Eve"),
        ("surname", "Intruder"),
        ("token", &token),
        ("linkkey", &key5),
        ("resetcode", &code),
        ("newpassword", "Intruders-Password-9"),
    ];
    let tail: String = params
        .iter()
        .map(|(n, v)| format!("/{n}/{}", percent_encode(v)))
        .collect();
    let routes = route_table();
    assert!(
        routes.len() >= 28,
        "the route table lost methods: {routes:?}"
    );
    let mut calls = 0;
    for route in &routes {
        for verb in route.verbs {
            let mut keys = vec![("another company's key", &school2)];
            if route.scope == "write" {
                keys.push(("a read-only key", &reader));
            }
            for (who, ttu) in keys {
                let r = match *verb {
                    "get" => ttu.get(&format!("{}{tail}", route.path)).await,
                    "post" => ttu.post_form(route.path, &params).await,
                    other => panic!("{}: an HTTP method the matrix lacks: {other}", route.path),
                };
                calls += 1;
                assert!(
                    !(200..300).contains(&r.status),
                    "{verb} {} with {who} answered {}: {}",
                    route.path,
                    r.status,
                    r.text
                );
                if who == "a read-only key" {
                    fail0(&r, 403, "lacks the write scope");
                }
            }
        }
    }
    assert!(calls > routes.len(), "{calls} calls");
    assert_eq!(company_1(&school1, &uid).await, before);
    // The control: with company 1's own key the same parameters reach every read
    // method, so the refusals above were the boundary's, not bad input's.
    for route in routes.iter().filter(|r| r.scope == "read") {
        let r = school1.get(&format!("{}{tail}", route.path)).await;
        assert_eq!(r.status, 200, "{}: {}", route.path, r.text);
    }
    ok1(school1
        .post_form(
            "/accounts/auth_user",
            &[("username", VICTIM), ("password", PASSWORD)],
        )
        .await);
}
