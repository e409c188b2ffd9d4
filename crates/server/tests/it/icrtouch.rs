//! The TouchTopUp dialect from the outside: every sample request of the document under
//! `/accounts` and `/users` answers in the sample's shape, in JSON and in XML; the API
//! key; company keys; bad input; unknown methods; the native administration routes,
//! and their place in the OpenAPI document.

use crate::common;
use crate::icrtouch_support;
use prepaid_dialect_touchtopup::errors::NO_DATA;

use icrtouch_support::*;
use reqwest::Method;
use serde_json::{Value, json};

/// The `HEADERID`s of a transaction history, newest first.
fn header_ids(history: &Value) -> Vec<String> {
    history["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|t| t["HEADERID"].as_str().expect("HEADERID").to_owned())
        .collect()
}

#[tokio::test]
async fn account_samples_answer_in_their_shape_in_json_and_xml() {
    let (_server, admin, ttu) = fixture().await;

    let (r, _) = json_and_xml(&ttu, "/accounts/company_details/cid/1").await;
    assert_eq!(ok1(r), sample("company_details"));

    let (r, _) = json_and_xml(&ttu, "/accounts/customer_details/coid/1/custid/5").await;
    assert_eq!(ok1(r), sample("customer_details"));

    // Nothing paid yet: the document's answer for no data.
    let (r, _) = json_and_xml(&ttu, "/accounts/payment_history/coid/1/custid/5/").await;
    fail0(&r, 404, "No Data Available");
    assert_eq!(r.json, sample("no_data"));

    admin.top_up("1.5", 1000).await;
    let sold = sale(
        &admin,
        1,
        5,
        995,
        json!([{"itemrecord": 4, "qty": 1, "text": "Ale Of Wight "},
               {"itemrecord": 2, "qty": 2, "text": "Ringwood & burg :P"}]),
    )
    .await;
    assert_eq!(sold["balance_after"], json!(5));

    let (r, _) = json_and_xml(&ttu, "/accounts/customer_balance/coid/1/custid/5").await;
    let balance = ok1(r);
    assert_shape(&sample("customer_balance"), &balance);
    assert_eq!(balance["balance"]["BALANCE"], "5");

    // The sample's trailing slash is accepted.
    let (r, _) = json_and_xml(&ttu, "/accounts/payment_history/coid/1/custid/5/").await;
    let payments = ok1(r);
    assert_shape(&sample("payment_history"), &payments);
    let p = &payments["payments"][0];
    assert_eq!(p["ADJUSTMENT"], "1000");
    assert_eq!(p["PAYMENTSOURCE"], "0");
    assert_eq!(p["RECIEVED"], "0000-00-00 00:00:00");
    assert_eq!(p["TRANSACTIONID"], "");
    assert_eq!(payments["payments"].as_array().unwrap().len(), 1);

    let (r, _) = json_and_xml(&ttu, "/accounts/transaction_history/coid/1/custid/5").await;
    let history = ok1(r);
    assert_shape(&sample("transaction_history"), &history);
    let rows = history["transactions"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["ACCOUNTADJ"], "-995");
    assert_eq!(rows[0]["SALETOTAL"], "995");
    assert_eq!(rows[0]["CONSECNUMBER"], "84");
    assert_eq!(rows[0]["SALEID"], "1000084");
    assert_eq!(rows[0]["BALANCE"], "5");
    assert_eq!(rows[1]["ACCOUNTADJ"], "1000");
    assert_eq!(rows[1]["SALETOTAL"], "0");
    assert_eq!(rows[1]["BALANCE"], "1000");
    let ids = header_ids(&history);
    let numbers: Vec<u64> = ids.iter().map(|i| i.parse().unwrap()).collect();
    assert!(numbers[0] > numbers[1], "numbers grow with time: {ids:?}");
    // Numbers never change.
    let again = ok1(ttu
        .get("/accounts/transaction_history/coid/1/custid/5")
        .await);
    assert_eq!(header_ids(&again), ids);

    let (r, _) = json_and_xml(
        &ttu,
        &format!("/accounts/transaction_detail/tid/{}/coid/1", ids[0]),
    )
    .await;
    let detail = ok1(r);
    assert_shape(&sample("transaction_detail"), &detail);
    let t = &detail["transaction"];
    assert_eq!(t["HEADERID"], json!(ids[0]));
    assert_eq!(t["SALETOTAL"], "995");
    assert_eq!(t["DATE"].as_str().unwrap().len(), 8);
    assert_eq!(t["TIME"].as_str().unwrap().len(), 4);
    assert_eq!(
        t["items"],
        json!([{"ITEMRECORD": "4", "QTY": "1", "TEXT": "Ale Of Wight "},
               {"ITEMRECORD": "2", "QTY": "2", "TEXT": "Ringwood & burg :P"}])
    );
    // The top-up has a detail too, without items.
    let (r, _) = json_and_xml(
        &ttu,
        &format!("/accounts/transaction_detail/tid/{}/coid/1", ids[1]),
    )
    .await;
    assert_eq!(ok1(r)["transaction"]["items"], json!([]));
    // Another company has no such transaction.
    put_company(&admin, 2, "Other", "11").await;
    let r = ttu
        .get(&format!(
            "/accounts/transaction_detail/tid/{}/coid/2",
            ids[0]
        ))
        .await;
    fail0(&r, 404, NO_DATA);
}

#[tokio::test]
async fn the_format_is_chosen_by_path_query_or_accept() {
    let (_server, _admin, ttu) = fixture().await;
    let path = "/accounts/company_details/cid/1";
    let json = ttu.get(path).await;
    for xml in [
        ttu.get(&format!("{path}/format/xml")).await,
        ttu.get(&format!("{path}?format=xml")).await,
        ttu.get_with(path, &[("accept", "application/xml")]).await,
        ttu.get_with(path, &[("accept", "text/xml")]).await,
    ] {
        check_xml_matches(&json, &xml);
        assert!(xml.text.starts_with(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<xml><status>1</status>\
             <name>ICRTouch Testing</name><db>10</db></xml>"
        ));
    }
    let r = ttu.get(&format!("{path}/format/json")).await;
    assert_eq!(ok1(r), sample("company_details"));
    let r = ttu.get(&format!("{path}/format/csv")).await;
    fail0(&r, 400, "format must be json or xml");
    // Errors come in the format asked for.
    let json = ttu.get("/accounts/company_details/cid/9").await;
    let xml = ttu.get("/accounts/company_details/cid/9/format/xml").await;
    fail0(&json, 404, NO_DATA);
    check_xml_matches(&json, &xml);
}

/// Creates user `email` as the document's sample user; returns the uid.
async fn create_user(ttu: &Ttu, email: &str, password: &str) -> u64 {
    let r = ttu
        .post_form(
            "/users/user_create",
            &[
                ("title", "Mr"),
                ("firstname", "John"),
                ("surname", "Smith"),
                ("address_1", "26"),
                ("address_2", "daish way"),
                ("address_3", ""),
                ("address_4", ""),
                ("postcode", "po30 5xb"),
                ("tel", "08446931119"),
                ("email", email),
                ("password", password),
            ],
        )
        .await;
    let created = ok1(r);
    assert_shape(&sample("user_create"), &created);
    assert_shape(&sample("user_create_2"), &created);
    let uid = created["uid"].as_u64().expect("uid");
    assert_eq!(created["user"], json!(uid.to_string()));
    uid
}

#[tokio::test]
async fn user_samples_answer_in_their_shape_in_json_and_xml() {
    let (_server, admin, ttu) = fixture().await;
    put_company(&admin, 3, "Third", "12").await;
    let c1 = put_customer(&admin, 1, 10, "Ms", "Jane", "Smith", "54322").await;
    let c3 = put_customer(&admin, 3, 16, "Mr", "Jim", "Smith", "777").await;
    let c5 = admin
        .get("/v1/icrtouch/companies/1/customers/5")
        .await
        .ok(200);

    let uid = create_user(&ttu, "someone@example.com", "mysecretpassword").await;
    let (r, _) = json_and_xml(&ttu, &format!("/users/user_details/uid/{uid}")).await;
    assert_eq!(ok1(r), sample("user_details"));

    // An email is registered once, whatever its case.
    let r = ttu
        .post_json(
            "/users/user_create",
            &json!({"firstname": "A", "surname": "B", "email": "SOMEONE@example.com",
                    "password": "another password"}),
        )
        .await;
    fail0(&r, 409, "already exists");

    let (r, _) = json_and_xml(
        &ttu,
        "/users/user_check_email_exists/email/someone@example.com",
    )
    .await;
    assert_eq!(ok1(r), sample("user_check_email_exists"));
    let (r, _) = json_and_xml(
        &ttu,
        "/users/user_check_email_exists/email/nobody@example.com",
    )
    .await;
    fail0(&r, 404, "Email not found");

    // Linking accounts with their link keys.
    for (c, coid, custid) in [(&c5, "1", "5"), (&c1, "1", "10"), (&c3, "3", "16")] {
        let key = c["link_key"].as_str().expect("link_key");
        let (r, _) = json_and_xml(
            &ttu,
            &format!("/accounts/validate_accountkey/linkkey/{key}"),
        )
        .await;
        assert_eq!(ok1(r), sample("validate_accountkey"));
        let r = ttu
            .post_form(
                "/users/user_link_account",
                &[("uid", &uid.to_string()), ("linkkey", key)],
            )
            .await;
        let linked = ok1(r);
        assert_shape(&sample("user_link_account"), &linked);
        assert_eq!(linked["coid"], coid);
        assert_eq!(linked["custid"], custid);
    }
    let forged = "000001-000005-000000000";
    let r = ttu
        .get(&format!("/accounts/validate_accountkey/linkkey/{forged}"))
        .await;
    fail0(&r, 404, "linkkey is not valid");

    // auth_user, in the path and in a POST body.
    let (r, _) = json_and_xml(
        &ttu,
        "/accounts/auth_user/username/someone@example.com/password/mysecretpassword",
    )
    .await;
    let auth = ok1(r);
    assert_shape(&sample("auth_user"), &auth);
    assert_eq!(auth["userid"], json!(uid.to_string()));
    assert_eq!(
        auth["companies"],
        json!({"1": {"company_id": "1", "customers": ["5", "10"]},
               "3": {"company_id": "3", "customers": ["16"]}})
    );
    let r = ttu
        .post_form(
            "/accounts/auth_user",
            &[
                ("username", "someone@example.com"),
                ("password", "mysecretpassword"),
            ],
        )
        .await;
    assert_eq!(ok1(r), auth);
    let r = ttu
        .post_json(
            "/accounts/auth_user/format/xml",
            &json!({"username": "someone@example.com", "password": "wrong password"}),
        )
        .await;
    let json_fail = ttu
        .get("/accounts/auth_user/username/someone@example.com/password/wrong")
        .await;
    check_xml_matches(&json_fail, &r);
    assert_eq!(json_fail.status, 401);
    assert_shape(&sample("auth_user_failed"), &json_fail.json);
    assert_eq!(
        json_fail.json["msg"],
        "Could not login user with username someone@example.com using password supplied"
    );

    // Forgotten password: a reset code, checked, then used up by the change it allows.
    // Each request makes a new code, so the XML answer is compared by its shape.
    let xml = ttu
        .get("/users/user_forgot_password/email/someone@example.com/format/xml")
        .await;
    assert_eq!(xml.status, 200, "{}", xml.text);
    let mut expected = as_xml_value(&sample("user_forgot_password"));
    let read = read_xml(&xml.text);
    expected["userid"] = json!(uid.to_string());
    expected["resetcode"] = read["resetcode"].clone();
    assert_eq!(read, expected);
    let forgot = ok1(ttu
        .get("/users/user_forgot_password/email/someone@example.com")
        .await);
    assert_shape(&sample("user_forgot_password"), &forgot);
    let code = forgot["resetcode"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 32);
    assert!(
        code.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(forgot["userid"], json!(uid.to_string()));
    let check = format!("/users/user_check_reset_code/userid/{uid}/resetcode/{code}");
    let (r, _) = json_and_xml(&ttu, &check).await;
    let checked = ok1(r);
    assert_shape(&sample("user_check_reset_code"), &checked);
    assert_eq!(checked["databaseresetcode"], json!(code));
    let r = ttu
        .get(&format!(
            "/users/user_check_reset_code/userid/{uid}/resetcode/{}",
            "0".repeat(32)
        ))
        .await;
    fail0(&r, 404, "Reset code not found");
    let r = ttu
        .post_form(
            "/users/user_change_password",
            &[
                ("uid", &uid.to_string()),
                ("resetcode", &code),
                ("newpassword", "a new password"),
            ],
        )
        .await;
    assert_eq!(ok1(r), sample("user_change_password"));
    fail0(&ttu.get(&check).await, 404, "Reset code not found");
    let r = ttu
        .post_form(
            "/users/user_change_password",
            &[
                ("uid", &uid.to_string()),
                ("resetcode", &code),
                ("newpassword", "third password"),
            ],
        )
        .await;
    fail0(&r, 404, "Reset code not found");

    // Changing the password needs the old one.
    let r = ttu
        .post_form(
            "/users/user_change_password/format/xml",
            &[
                ("uid", &uid.to_string()),
                ("oldpassword", "mysecretpassword"),
                ("newpassword", "third password"),
            ],
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("<status>0</status>"), "{}", r.text);
    let r = ttu
        .post_json(
            "/users/user_change_password",
            &json!({"uid": uid, "oldpassword": "a new password", "newpassword": "third password"}),
        )
        .await;
    assert_eq!(ok1(r), sample("user_change_password"));
    let r = ttu
        .post_form(
            "/accounts/auth_user",
            &[
                ("username", "Someone@Example.com"),
                ("password", "third password"),
            ],
        )
        .await;
    assert_eq!(ok1(r)["userid"], json!(uid.to_string()));
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_user_for_a_while() {
    let (_server, _admin, ttu) = fixture().await;
    create_user(&ttu, "fred@example.com", "freds password").await;
    for _ in 0..5 {
        let r = ttu
            .post_form(
                "/accounts/auth_user",
                &[("username", "fred@example.com"), ("password", "guess")],
            )
            .await;
        fail0(
            &r,
            401,
            "Could not login user with username fred@example.com",
        );
        assert_eq!(r.json["auth"], "false");
    }
    // Locked now, even with the right password.
    let r = ttu
        .post_form(
            "/accounts/auth_user",
            &[
                ("username", "fred@example.com"),
                ("password", "freds password"),
            ],
        )
        .await;
    fail0(&r, 429, "Too many failed logins");
    assert_eq!(r.json["auth"], "false");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(wait > 0);
    // Another user is not affected.
    create_user(&ttu, "other@example.com", "others password").await;
    let r = ttu
        .post_form(
            "/accounts/auth_user",
            &[
                ("username", "other@example.com"),
                ("password", "others password"),
            ],
        )
        .await;
    ok1(r);
}

#[tokio::test]
async fn the_api_key_is_required_and_company_keys_stay_in_their_company() {
    let (server, admin, ttu) = fixture().await;
    put_company(&admin, 2, "Second", "20").await;
    put_customer(&admin, 2, 7, "Mrs", "Ann", "Other", "1").await;

    let anonymous = Ttu::new(&server, None);
    let r = anonymous.get("/accounts/company_details/cid/1").await;
    fail0(&r, 401, "X-API-KEY");
    let xml = anonymous
        .get("/accounts/company_details/cid/1/format/xml")
        .await;
    check_xml_matches(&r, &xml);
    let wrong = Ttu::new(&server, Some("pp_not_a_key"));
    fail0(
        &wrong.get("/accounts/company_details/cid/1").await,
        403,
        "Invalid API Key",
    );
    // The prepaid Authorization header is not the TouchTopUp key.
    let bearer = Ttu {
        api: server.admin(),
        key: None,
    };
    fail0(
        &bearer.get("/accounts/company_details/cid/1").await,
        401,
        "X-API-KEY",
    );

    // A read-only key reads but does not write.
    let (key, _) = admin.create_key("reader", &["read"], None).await;
    let reader = Ttu::new(&server, key["secret"].as_str());
    ok1(reader.get("/accounts/company_details/cid/1").await);
    let r = reader
        .post_form(
            "/wallets/wallet_create",
            &[("coid", "1"), ("name", "x"), ("type", "1")],
        )
        .await;
    fail0(&r, 403, "lacks the write scope");

    // A key of company 1 reaches company 1 only.
    let (key, _) = admin.create_key("school-1", &["read", "write"], None).await;
    admin
        .json(
            Method::PUT,
            "/v1/icrtouch/keys/school-1",
            &json!({"coid": 1}),
        )
        .await
        .ok(200);
    let school = Ttu::new(&server, key["secret"].as_str());
    ok1(school.get("/accounts/company_details/cid/1").await);
    ok1(school
        .get("/accounts/customer_balance/coid/1/custid/5")
        .await);
    for path in [
        "/accounts/company_details/cid/2",
        "/accounts/customer_details/coid/2/custid/7",
        "/accounts/customer_balance/coid/2/custid/7",
        "/accounts/payment_history/coid/2/custid/7",
        "/accounts/transaction_history/coid/2/custid/7",
        "/accounts/transaction_detail/tid/1/coid/2",
        "/accounts/make_payment/coid/2/custid/7/pmtType/1/amt/5.00",
        "/wallets/wallet_list/coid/2",
        "/wallets/customer_wallets/coid/2/cid/7",
        "/wallets/customer_wallet_details/coid/2/cid/7/wallet/1",
        "/wallets/wallet_customers_assigned/coid/2/wallet/1",
    ] {
        let r = school.get(path).await;
        fail0(&r, 403, "limited to company 1");
        let xml = school.get(&format!("{path}/format/xml")).await;
        check_xml_matches(&r, &xml);
    }
    let r = school
        .post_form(
            "/wallets/wallet_create",
            &[("coid", "2"), ("name", "x"), ("type", "1")],
        )
        .await;
    fail0(&r, 403, "limited to company 1");
    // Its link key cannot link a customer of company 2 either.
    let c7 = admin
        .get("/v1/icrtouch/companies/2/customers/7")
        .await
        .ok(200);
    let uid = create_user(&school, "parent@example.com", "parents password").await;
    let r = school
        .post_form(
            "/users/user_link_account",
            &[
                ("uid", &uid.to_string()),
                ("linkkey", c7["link_key"].as_str().unwrap()),
            ],
        )
        .await;
    fail0(&r, 403, "limited to company 1");
    // Lifting the limit makes the key tenant-wide again.
    admin
        .json(
            Method::PUT,
            "/v1/icrtouch/keys/school-1",
            &json!({"coid": null}),
        )
        .await
        .ok(200);
    ok1(school.get("/accounts/company_details/cid/2").await);
    // A tenant's key never sees another tenant's companies.
    let (_, other_admin) = admin.create_tenant("other-school").await;
    put_company(&other_admin, 1, "Elsewhere", "99").await;
    let r = ttu.get("/accounts/company_details/cid/1").await;
    assert_eq!(ok1(r)["name"], "ICRTouch Testing");
}

/// A POST of bad input: path, form fields, HTTP status, a part of `msg`.
type Post<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);

#[tokio::test]
async fn bad_input_says_what_is_wrong_and_changes_nothing() {
    let (_server, admin, ttu) = fixture().await;
    let cases: &[(&str, u16, &str)] = &[
        ("/accounts/company_details", 400, "cid is required"),
        (
            "/accounts/company_details/cid/abc",
            400,
            "cid must be a whole number",
        ),
        (
            "/accounts/company_details/cid/0",
            400,
            "cid must be a whole number",
        ),
        (
            "/accounts/company_details/cid/1.5",
            400,
            "cid must be a whole number",
        ),
        ("/accounts/company_details/cid/42", 404, NO_DATA),
        ("/accounts/company_details/cid", 400, "cid has no value"),
        ("/accounts/company_details/cid/1/cid/2", 400, "given twice"),
        ("/accounts/company_details/cid/1?cid=2", 400, "given twice"),
        (
            "/accounts/company_details/cid/%zz",
            400,
            "malformed %-escape",
        ),
        (
            "/accounts/customer_details/coid/1",
            400,
            "custid is required",
        ),
        ("/accounts/customer_details/coid/1/custid/6", 404, NO_DATA),
        (
            "/accounts/customer_balance/coid/x/custid/5",
            400,
            "coid must be a whole number",
        ),
        ("/accounts/transaction_detail/tid/999/coid/1", 404, NO_DATA),
        (
            "/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/5.001",
            400,
            "more than 2 decimals",
        ),
        (
            "/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/-5",
            400,
            "amt must be an amount",
        ),
        (
            "/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/0.00",
            400,
            "more than zero",
        ),
        (
            "/accounts/make_payment/coid/1/custid/5/pmtType/2/amt/5.00",
            400,
            "pmtType 2",
        ),
        (
            "/accounts/make_payment/coid/1/custid/5/amt/5.00",
            400,
            "pmttype is required",
        ),
        ("/users/user_details/uid/77", 404, NO_DATA),
        (
            "/users/user_details/uid/seven",
            400,
            "uid must be a whole number",
        ),
        (
            "/users/user_check_reset_code/userid/1",
            400,
            "resetcode is required",
        ),
        ("/wallets/wallet_list/coid/1", 404, "No Data Available"),
        (
            "/wallets/customer_wallet_details/coid/1/cid/5/wallet/3",
            404,
            NO_DATA,
        ),
    ];
    for (path, http, needle) in cases {
        let r = ttu.get(path).await;
        fail0(&r, *http, needle);
        let xml = ttu.get_with(path, &[("accept", "application/xml")]).await;
        check_xml_matches(&r, &xml);
    }
    let posts: &[Post] = &[
        (
            "/users/user_create",
            &[("email", "a@b.c")],
            400,
            "password is required",
        ),
        (
            "/users/user_create",
            &[
                ("email", "not-an-email"),
                ("password", "long enough"),
                ("firstname", "A"),
                ("surname", "B"),
            ],
            400,
            "email must be an email address",
        ),
        (
            "/users/user_create",
            &[
                ("email", "a@b.c"),
                ("password", "short"),
                ("firstname", "A"),
                ("surname", "B"),
            ],
            400,
            "password must be 8",
        ),
        (
            "/users/user_change_password",
            &[("uid", "1"), ("newpassword", "long enough")],
            400,
            "oldpassword",
        ),
        (
            "/users/user_link_account",
            &[("uid", "1")],
            400,
            "linkkey is required",
        ),
        (
            "/wallets/wallet_create",
            &[("coid", "1"), ("name", "Trip")],
            400,
            "type is required",
        ),
        (
            "/wallets/wallet_create",
            &[
                ("coid", "1"),
                ("name", "Trip"),
                ("type", "0"),
                ("paybydate", "2017-09-01"),
            ],
            400,
            "needs paybydate and purposedate",
        ),
        (
            "/wallets/wallet_create",
            &[
                ("coid", "1"),
                ("name", "Trip"),
                ("type", "0"),
                ("paybydate", "2017-02-30"),
                ("purposedate", "2017-09-30"),
            ],
            400,
            "paybydate must be a date",
        ),
        (
            "/wallets/wallet_create",
            &[("coid", "1"), ("name", "x"), ("type", "2")],
            400,
            "type must be 0",
        ),
        (
            "/wallets/wallet_create",
            &[
                ("coid", "1"),
                ("name", "x"),
                ("type", "1"),
                ("allowoverpay", "yes"),
            ],
            400,
            "allowoverpay must be 0 or 1",
        ),
        (
            "/wallets/wallet_create",
            &[("coid", "9"), ("name", "x"), ("type", "1")],
            404,
            NO_DATA,
        ),
        (
            "/wallets/wallet_add_customer",
            &[("coid", "1"), ("wallet", "1"), ("custid", "5")],
            404,
            NO_DATA,
        ),
        (
            "/accounts/record_payment",
            &[("token", "EC-1Y43567715771310G")],
            404,
            "Unknown payment token",
        ),
    ];
    for (path, fields, http, needle) in posts {
        let r = ttu.post_form(path, fields).await;
        fail0(&r, *http, needle);
    }
    // None of it made a user or a wallet.
    fail0(&ttu.get("/users/user_details/uid/1").await, 404, NO_DATA);
    fail0(
        &ttu.get("/wallets/wallet_list/coid/1").await,
        404,
        "No Data Available",
    );
    assert_eq!(admin.balance("1.5").await, 0);
    // A JSON body that is not an object, or nests, is refused too.
    let r = ttu.post_json("/users/user_create", &json!(["a"])).await;
    fail0(&r, 400, "must be an object");
    let r = ttu
        .post_json("/users/user_create", &json!({"email": {"a": 1}}))
        .await;
    fail0(&r, 400, "email must be text");
}

#[tokio::test]
async fn unknown_methods_and_wrong_http_methods_answer_status_0() {
    let (_server, _admin, ttu) = fixture().await;
    let r = ttu.get("/accounts/no_such_method/coid/1").await;
    fail0(&r, 404, "Unknown method");
    let xml = ttu.get("/accounts/no_such_method/coid/1/format/xml").await;
    check_xml_matches(&r, &xml);
    let r = ttu.get("/users/user_create").await;
    fail0(&r, 405, "GET is not allowed");
    let r = ttu.post_form("/accounts/company_details/cid/1", &[]).await;
    fail0(&r, 405, "POST is not allowed");
}

#[tokio::test]
async fn values_at_the_limits() {
    let (_server, admin, ttu) = fixture().await;
    // The largest company and customer numbers a link key holds.
    put_company(&admin, 999_999, "Big", "1").await;
    let c = put_customer(&admin, 999_999, 999_999, "Dr", "Max", "Imum", "9").await;
    ok1(ttu
        .get("/accounts/customer_details/coid/999999/custid/999999")
        .await);
    let key = c["link_key"].as_str().unwrap();
    assert!(key.starts_with("999999-999999-"), "{key}");
    ok1(ttu
        .get(&format!("/accounts/validate_accountkey/linkkey/{key}"))
        .await);
    fail0(
        &ttu.get("/accounts/customer_details/coid/1000000/custid/1")
            .await,
        400,
        "coid must be a whole number from 1 to 999999",
    );
    // A parameter value of the longest length is taken; one byte more is refused.
    let long = "a".repeat(1024);
    fail0(
        &ttu.get(&format!("/users/user_check_email_exists/email/{long}"))
            .await,
        404,
        "Email not found",
    );
    fail0(
        &ttu.get(&format!("/users/user_check_email_exists/email/{long}a"))
            .await,
        400,
        "longer than 1024 bytes",
    );
}

#[tokio::test]
async fn the_native_api_administers_companies_customers_keys_and_sales() {
    let (_server, admin, ttu) = fixture().await;
    // The company's currency stays; its name may change.
    let c = admin
        .json(
            Method::PUT,
            "/v1/icrtouch/companies/1",
            &json!({"name": "Renamed", "db": "10", "currency": "GBP"}),
        )
        .await
        .ok(200);
    assert_eq!(
        c,
        json!({"coid": 1, "name": "Renamed", "db": "10", "currency": "GBP", "scale": 2})
    );
    // Refusals: another currency, an unknown company, a key for an unknown company.
    for (path, body, status, code) in [
        (
            "/v1/icrtouch/companies/1",
            json!({"name": "Renamed", "currency": "EUR"}),
            409,
            "conflict",
        ),
        (
            "/v1/icrtouch/companies/1000000",
            json!({"name": "x", "currency": "GBP"}),
            404,
            "not_found",
        ),
        (
            "/v1/icrtouch/companies/4/customers/1",
            json!({"firstname": "x"}),
            404,
            "not_found",
        ),
        (
            "/v1/icrtouch/keys/portal",
            json!({"coid": 4}),
            400,
            "invalid_request",
        ),
    ] {
        admin
            .json(Method::PUT, path, &body)
            .await
            .problem(status, code);
    }

    // Updating a customer keeps what is not sent, and its money.
    admin.top_up("1.5", 300).await;
    let c = admin
        .json(
            Method::PUT,
            "/v1/icrtouch/companies/1/customers/5",
            &json!({"account_number": "99"}),
        )
        .await
        .ok(200);
    assert_eq!(c["firstname"], "John");
    assert_eq!(c["account_number"], "99");
    assert_eq!(c["wallet_id"], "1.5");
    assert_eq!(admin.balance("1.5").await, 300);

    // A sale sent twice with one Idempotency-Key debits once.
    let body = json!({"amount": 120, "sale_total": 150, "site": 2, "consec_number": 9,
                      "sale_id": 1_000_009, "items": [{"itemrecord": 7, "text": "Toast"}]});
    let first = admin
        .post_idem(
            "/v1/icrtouch/companies/1/customers/5/sales",
            "sale-9",
            &body,
        )
        .await
        .ok(201);
    let again = admin
        .post_idem(
            "/v1/icrtouch/companies/1/customers/5/sales",
            "sale-9",
            &body,
        )
        .await
        .ok(201);
    assert_eq!(first["id"], again["id"]);
    assert_eq!(admin.balance("1.5").await, 180);
    let history = ok1(ttu
        .get("/accounts/transaction_history/coid/1/custid/5")
        .await);
    let t = &history["transactions"][0];
    assert_eq!(t["SALETOTAL"], "150");
    assert_eq!(t["ACCOUNTADJ"], "-120");
    assert_eq!(t["SITE"], "2");
    let tid = t["HEADERID"].as_str().unwrap();
    let detail = ok1(ttu
        .get(&format!("/accounts/transaction_detail/tid/{tid}/coid/1"))
        .await);
    assert_eq!(
        detail["transaction"]["items"],
        json!([{"ITEMRECORD": "7", "QTY": "1", "TEXT": "Toast"}])
    );
    // A sale beyond the balance is refused and recorded nowhere.
    let r = admin
        .post(
            "/v1/icrtouch/companies/1/customers/5/sales",
            &json!({"amount": 181}),
        )
        .await;
    r.problem(422, "insufficient_funds");
    let history = ok1(ttu
        .get("/accounts/transaction_history/coid/1/custid/5")
        .await);
    assert_eq!(history["transactions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_openapi_document_lists_the_native_touchtopup_routes() {
    let server = common::Server::start().await;
    let doc = server.anonymous().get("/v1/openapi.json").await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    let paths = doc.json["paths"].as_object().expect("a paths object");
    for (path, method) in [
        ("/v1/icrtouch/companies/{coid}", "put"),
        ("/v1/icrtouch/companies/{coid}", "get"),
        ("/v1/icrtouch/companies/{coid}/customers/{custid}", "put"),
        ("/v1/icrtouch/companies/{coid}/customers/{custid}", "get"),
        (
            "/v1/icrtouch/companies/{coid}/customers/{custid}/sales",
            "post",
        ),
        ("/v1/icrtouch/keys/{name}", "put"),
    ] {
        let operation = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from {:?}", paths.keys()))[method];
        assert_eq!(operation["tags"], json!(["touchtopup"]), "{method} {path}");
    }
    // The native routes stay beside them.
    assert!(paths.contains_key("/v1/customers"), "{:?}", paths.keys());
    let schemas = &doc.json["components"]["schemas"];
    for name in [
        "TouchTopUpCompanyIn",
        "Company",
        "TouchTopUpCustomerOut",
        "TouchTopUpSaleIn",
        "TouchTopUpKeyIn",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
}

#[tokio::test]
async fn php_clients_multipart_bodies_are_forms() {
    let (server, _admin, ttu) = fixture().await;
    let post = |form: reqwest::multipart::Form| {
        let url = server
            .anonymous()
            .url(&format!("{MOUNT}/users/user_create"));
        reqwest::Client::new()
            .post(url)
            .header("x-api-key", ttu.key.as_deref().unwrap())
            .multipart(form)
            .send()
    };
    // What PHP's curl sends when `CURLOPT_POSTFIELDS` is an array.
    let form = reqwest::multipart::Form::new()
        .text("firstname", "Ann")
        .text("surname", "Multipart")
        .text("email", "ann@example.com")
        .text("password", "correct horse battery");
    let res = post(form).await.unwrap();
    let status = res.status().as_u16();
    let v: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!((status, &v["status"]), (200, &json!(1)), "{v}");
    ok1(ttu
        .get("/users/user_check_email_exists/email/ann@example.com")
        .await);
    // A file is no form field.
    let form = reqwest::multipart::Form::new().part(
        "email",
        reqwest::multipart::Part::bytes(b"x@example.com".to_vec()).file_name("email.txt"),
    );
    assert_eq!(post(form).await.unwrap().status().as_u16(), 400);
}

#[tokio::test]
async fn accept_q_values_choose_json_or_xml_and_browsers_get_json() {
    let (_server, _admin, ttu) = fixture().await;
    let path = "/accounts/company_details/cid/1";
    for (accept, xml) in [
        ("application/json;q=0.5, application/xml", true),
        ("application/xml;q=0.5, application/json", false),
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            false,
        ),
        ("application/xml", true),
    ] {
        let r = ttu.get_with(path, &[("accept", accept)]).await;
        assert_eq!(r.status, 200, "{accept}: {}", r.text);
        assert_eq!(r.text.starts_with("<?xml"), xml, "{accept}: {}", r.text);
    }
}

#[tokio::test]
async fn xml_lists_name_their_entries_as_codeigniter_does() {
    let (_server, admin, ttu) = fixture().await;
    admin.top_up("1.5", 1000).await;
    admin.top_up("1.5", 500).await;
    let r = ttu
        .get("/accounts/payment_history/coid/1/custid/5/format/xml")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("<payments><payment>"), "{}", r.text);
    assert!(!r.text.contains("<item>"), "{}", r.text);
    let r = ttu
        .get("/accounts/transaction_history/coid/1/custid/5/format/xml")
        .await;
    assert!(r.text.contains("<transactions><transaction>"), "{}", r.text);
}

/// Sends `line` as a request line and reads the answer until the server closes.
async fn raw_request(server: &common::Server, line: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = server.base().strip_prefix("http://").unwrap();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before the whole line is sent.
    let _ = tcp
        .write_all(format!("{line} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").as_bytes())
        .await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tcp.read_to_end(&mut got),
    )
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn urls_too_long_to_read_answer_status_0_in_the_format_asked() {
    let (server, _admin, _ttu) = fixture().await;
    let long = "a".repeat(70_000);
    let json = raw_request(
        &server,
        &format!("GET {MOUNT}/accounts/company_details/cid/1/x/{long}"),
    )
    .await;
    assert!(
        json.starts_with("HTTP/1.1 414"),
        "{}",
        &json[..json.len().min(300)]
    );
    assert!(
        json.ends_with(r#"{"status":0,"msg":"The URL is too long"}"#),
        "{json}"
    );
    let xml = raw_request(
        &server,
        &format!("GET {MOUNT}/accounts/company_details/format/xml/cid/1/x/{long}"),
    )
    .await;
    assert!(
        xml.starts_with("HTTP/1.1 414"),
        "{}",
        &xml[..xml.len().min(300)]
    );
    assert!(xml.contains("<status>0</status>"), "{xml}");
    // Other paths keep the server's own answer, and a line of a usual length is read.
    let other = raw_request(&server, &format!("GET /v1/customers/{long}")).await;
    assert!(
        other.starts_with("HTTP/1.1 414"),
        "{}",
        &other[..other.len().min(300)]
    );
    let short = raw_request(
        &server,
        &format!("GET {MOUNT}/accounts/company_details/cid/1"),
    )
    .await;
    assert!(
        short.starts_with("HTTP/1.1 401"),
        "{}",
        &short[..short.len().min(300)]
    );
}
