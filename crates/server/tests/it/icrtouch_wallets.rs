//! The TouchTopUp dialect's wallets and payments from the outside: every `/wallets`
//! sample and `make_payment`/`record_payment` in the sample's shape, in JSON and XML;
//! a payment token credits exactly once; an event wallet refuses payments beyond its
//! charges unless overpay is allowed.

use crate::common;
use crate::icrtouch_support;
use prepaid_dialect_touchtopup::errors::NO_DATA;

use icrtouch_support::*;
use serde_json::{Value, json};

const MUSEUM: &str = "This wallet is for an event in this case a museum trip. It will not allow you \
    to pay more than the charges set against it.%0AThis event demonstrates how multiple charges can \
    be applied to create a payment plan";

async fn create_wallet(ttu: &Ttu, fields: &[(&str, &str)]) -> String {
    let mut all = vec![("coid", "1")];
    all.extend_from_slice(fields);
    let created = ok1(ttu.post_form("/wallets/wallet_create", &all).await);
    assert_shape(&sample("wallet_create"), &created);
    assert_eq!(created["msg"], "Wallet created");
    created["WALLETID"].as_str().expect("WALLETID").to_owned()
}

async fn museum(ttu: &Ttu, allowoverpay: &str) -> String {
    create_wallet(
        ttu,
        &[
            ("name", "Trip to the museum"),
            ("description", MUSEUM),
            ("type", "0"),
            ("paybydate", "2017-09-01"),
            ("purposedate", "2017-09-30"),
            ("allowoverpay", allowoverpay),
        ],
    )
    .await
}

async fn assign(ttu: &Ttu, wallet: &str, custid: &str) -> Value {
    let r = ttu
        .post_form(
            "/wallets/wallet_add_customer",
            &[("coid", "1"), ("wallet", wallet), ("custid", custid)],
        )
        .await;
    let v = ok1(r);
    assert_shape(&sample("wallet_add_customer"), &v);
    v
}

async fn charge(ttu: &Ttu, wallet: &str, amount: &str, due: &str, custid: Option<&str>) -> Value {
    let mut fields = vec![
        ("coid", "1"),
        ("wallet", wallet),
        ("charge", amount),
        ("duedate", due),
    ];
    if let Some(c) = custid {
        fields.push(("custid", c));
    }
    let v = ok1(ttu.post_form("/wallets/wallet_add_charge", &fields).await);
    assert_shape(&sample("wallet_add_charge"), &v);
    v
}

/// Starts and records a payment; returns the `payment_id`.
/// Revokes charge `chargeid` of wallet 1 of company 1 from customer `custid`.
async fn revoke(ttu: &Ttu, chargeid: &str, custid: &str) -> common::Resp {
    ttu.post_form(
        "/wallets/wallet_revoke_charge",
        &[
            ("coid", "1"),
            ("wallet", "1"),
            ("chargeid", chargeid),
            ("custid", custid),
        ],
    )
    .await
}

async fn pay(ttu: &Ttu, custid: &str, amount: &str, wallet: Option<&str>) -> i64 {
    let mut path = format!("/accounts/make_payment/coid/1/custid/{custid}/pmtType/1/amt/{amount}");
    if let Some(w) = wallet {
        path.push_str(&format!("/wallet/{w}"));
    }
    let started = ok1(ttu.get(&path).await);
    assert_shape(&sample("make_payment"), &started);
    let token = started["response"].as_str().unwrap().to_owned();
    let recorded = ok1(ttu
        .post_form(
            &format!("/accounts/record_payment/pmtType/1/token/{token}"),
            &[],
        )
        .await);
    assert_shape(&sample("record_payment"), &recorded);
    recorded["payment_id"].as_i64().unwrap()
}

#[tokio::test]
async fn wallet_samples_answer_in_their_shape_in_json_and_xml() {
    let (_server, admin, ttu) = fixture().await;
    put_customer(&admin, 1, 1, "Mr", "Clive", "Evans", "834523624").await;
    put_customer(&admin, 1, 2, "Mr", "Matt", "Bloggs", "576576245").await;

    let (r, _) = json_and_xml(&ttu, "/wallets/wallet_list/coid/1").await;
    fail0(&r, 404, "No Data Available");

    assert_eq!(museum(&ttu, "0").await, "1");
    let breakfast = create_wallet(
        &ttu,
        &[
            ("name", "Breakfast club"),
            ("description", "A wallet for a recurring event"),
            ("type", "1"),
        ],
    )
    .await;
    assert_eq!(breakfast, "2");
    let open = create_wallet(&ttu, &[("name", "Open"), ("type", "1")]).await;
    let r = ttu
        .post_json(
            "/wallets/wallet_update",
            &json!({"coid": 1, "wallet": open, "name": "Open Wallet",
                    "description": "This is an open wallet"}),
        )
        .await;
    assert_eq!(ok1(r), sample("wallet_update"));

    let (r, _) = json_and_xml(&ttu, "/wallets/wallet_list/coid/1").await;
    let list = ok1(r);
    assert_shape(&sample("wallet_list"), &list);
    assert_eq!(
        list["wallets"],
        json!([
            {"WALLETID": "1", "NAME": "Trip to the museum", "DESCRIPTION": MUSEUM,
             "STATUS": "1", "TYPE": "0"},
            {"WALLETID": "2", "NAME": "Breakfast club",
             "DESCRIPTION": "A wallet for a recurring event", "STATUS": "1", "TYPE": "1"},
            {"WALLETID": "3", "NAME": "Open Wallet", "DESCRIPTION": "This is an open wallet",
             "STATUS": "1", "TYPE": "1"},
        ])
    );

    assert_eq!(assign(&ttu, "1", "2").await["customers"], json!(1));
    assert_eq!(assign(&ttu, "1", "1").await["customers"], json!(2));
    assert_eq!(assign(&ttu, "1", "5").await["customers"], json!(3));
    // Assigning again changes nothing.
    assert_eq!(assign(&ttu, "1", "5").await["customers"], json!(3));
    assign(&ttu, "2", "2").await;

    let (r, _) = json_and_xml(&ttu, "/wallets/wallet_customers_assigned/coid/1/wallet/1").await;
    let assigned = ok1(r);
    assert_shape(&sample("wallet_customers_assigned"), &assigned);
    let names: Vec<&str> = assigned["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["LASTNAME"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bloggs", "Evans", "Smith"]);
    assert_eq!(
        assigned["customers"][0],
        json!({"NUMBER": "2", "ACCOUNTNUMBER": "576576245", "LASTNAME": "Bloggs",
               "FIRSTNAME": "Matt", "TITLE": "Mr"})
    );

    let all = charge(&ttu, "1", "25.00", "2017-07-31", None).await;
    assert_eq!(all["customers_charged"], json!(["1", "2", "5"]));
    let one = charge(&ttu, "1", "25.00", "2017-08-31", Some("2")).await;
    assert_eq!(one["customers_charged"], json!(["2"]));
    let (c1, c2) = (
        all["CHARGEID"].as_str().unwrap().to_owned(),
        one["CHARGEID"].as_str().unwrap().to_owned(),
    );

    let (r, _) = json_and_xml(&ttu, "/wallets/customer_wallets/coid/1/cid/2").await;
    let wallets = ok1(r);
    assert_shape(&sample("customer_wallets"), &wallets);
    let ids: Vec<&str> = wallets["wallets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["WALLETID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1", "2"]);

    // Customer 2 pays 25.00 towards the first charge.
    let path = "/accounts/make_payment/coid/1/custid/2/pmtType/1/amt/25.00/wallet/1/chargeid/1";
    let started = ok1(ttu.get(path).await);
    let token = started["response"].as_str().unwrap().to_owned();
    ok1(ttu
        .post_form(
            "/accounts/record_payment",
            &[("pmtType", "1"), ("token", &token)],
        )
        .await);

    let (r, _) = json_and_xml(
        &ttu,
        "/wallets/customer_wallet_details/coid/1/cid/2/wallet/1",
    )
    .await;
    let details = ok1(r);
    assert_shape(&sample("customer_wallet_details"), &details);
    assert_eq!(
        details["wallet"],
        json!({"WALLETID": "1", "NAME": "Trip to the museum", "DESCRIPTION": MUSEUM,
               "PAYBYDATE": "2017-09-01", "PURPOSEDATE": "2017-09-30", "STATUS": "1",
               "ALLOWOVERPAY": "0"})
    );
    let p = &details["payments"][0];
    assert_eq!(p["ADJUSTMENT"], "2500");
    assert_eq!(p["PAYMENTSOURCE"], "1");
    assert_eq!(p["CHARGEID"], "1");
    assert!(!p["TRANSACTIONID"].as_str().unwrap().is_empty());
    assert_eq!(
        details["charges"],
        json!([{"ID": c1, "CHARGE": "25.00", "DUEDATE": "2017-07-31"},
               {"ID": c2, "CHARGE": "25.00", "DUEDATE": "2017-08-31"}])
    );
    // The wallet's ledger balance is what was paid less what was charged.
    assert_eq!(admin.balance("1.2.w1").await, -2500);

    // Revoking the second charge of customer 2: a compensating credit.
    let r = revoke(&ttu, &c2, "2").await;
    assert_eq!(ok1(r), sample("wallet_revoke_charge"));
    assert_eq!(admin.balance("1.2.w1").await, 0);
    let details = ok1(ttu
        .get("/wallets/customer_wallet_details/coid/1/cid/2/wallet/1")
        .await);
    assert_eq!(details["charges"].as_array().unwrap().len(), 1);
    // A repeat is harmless.
    let r = revoke(&ttu, &c2, "2").await;
    ok1(r);
    assert_eq!(admin.balance("1.2.w1").await, 0);
    let mutations = admin.mutations("1.2.w1").await;
    assert_eq!(
        mutations.len(),
        4,
        "charge, charge, payment, revoke: {mutations:?}"
    );

    // A charge already paid cannot be revoked from an event wallet: the wallet would
    // then hold more than its charges.
    let r = revoke(&ttu, &c1, "2").await;
    fail0(&r, 409, "has been paid");
    assert_eq!(admin.balance("1.2.w1").await, 0);

    // A third charge to everyone, revoked from all.
    let third = charge(&ttu, "1", "10.00", "2017-08-29", None).await;
    let c3 = third["CHARGEID"].as_str().unwrap().to_owned();
    let r = ttu
        .post_form(
            "/wallets/wallet_revoke_charge_from_all",
            &[("coid", "1"), ("wallet", "1"), ("chargeid", &c3)],
        )
        .await;
    assert_eq!(ok1(r), sample("wallet_revoke_charge_from_all"));
    assert_eq!(admin.balance("1.1.w1").await, -2500);
    assert_eq!(admin.balance("1.5.w1").await, -2500);

    let r = ttu
        .post_form(
            "/wallets/wallet_remove_customer",
            &[("coid", "1"), ("wallet", "1"), ("custid", "5")],
        )
        .await;
    assert_eq!(ok1(r), sample("wallet_remove_customer"));
    fail0(
        &ttu.get("/wallets/customer_wallets/coid/1/cid/5").await,
        404,
        "No Data Available",
    );
    let assigned = ok1(ttu
        .get("/wallets/wallet_customers_assigned/coid/1/wallet/1")
        .await);
    assert_eq!(assigned["customers"].as_array().unwrap().len(), 2);
    let r = ttu
        .post_form(
            "/wallets/wallet_remove_customer",
            &[("coid", "1"), ("wallet", "1"), ("custid", "5")],
        )
        .await;
    fail0(&r, 404, "not assigned");
    // Its history stays; assigning again reopens the same wallet.
    assign(&ttu, "1", "5").await;
    assert_eq!(admin.balance("1.5.w1").await, -2500);

    // XML of the POST answers.
    let r = ttu
        .post_form(
            "/wallets/wallet_add_charge/format/xml",
            &[
                ("coid", "1"),
                ("wallet", "2"),
                ("charge", "1.50"),
                ("duedate", "2017-09-01"),
            ],
        )
        .await;
    let read = read_xml(&r.text);
    assert_eq!(read["status"], "1");
    assert_eq!(read["customers_charged"], json!(["2"]));
}

#[tokio::test]
async fn a_payment_token_credits_exactly_once() {
    let (_server, admin, ttu) = fixture().await;
    let start = "/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/5.00";
    // Each start is a new payment, so the XML answer is compared by its shape.
    let xml = read_xml(&ttu.get(&format!("{start}/format/xml")).await.text);
    assert_eq!(xml["status"], "1");
    assert!(
        xml["response"].as_str().is_some_and(|t| !t.is_empty()),
        "{xml}"
    );
    let token = ok1(ttu.get(start).await)["response"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = format!("/accounts/record_payment/pmtType/1/token/{token}");
    let first = ok1(ttu.post_form(&record, &[]).await);
    assert_shape(&sample("record_payment"), &first);
    let again = ok1(ttu.post_form(&record, &[]).await);
    assert_eq!(first, again);
    let xml = ttu.post_form(&format!("{record}/format/xml"), &[]).await;
    assert_eq!(
        read_xml(&xml.text),
        json!({"payment_id": first["payment_id"].to_string(), "status": "1"})
    );
    // The XML start was never recorded: it credits nothing until it is.
    assert_eq!(admin.balance("1.5").await, 500);

    // Many at once: one credit, one payment_id.
    let started = ok1(ttu
        .get("/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/7.25")
        .await);
    let token = started["response"].as_str().unwrap().to_owned();
    let record = format!("/accounts/record_payment/token/{token}");
    let answers = futures_join(&ttu, &record, 8).await;
    let ids: std::collections::BTreeSet<i64> = answers
        .iter()
        .map(|a| a["payment_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_ne!(ids.iter().next(), first["payment_id"].as_i64().as_ref());
    assert_eq!(admin.balance("1.5").await, 500 + 725);

    let payments = ok1(ttu.get("/accounts/payment_history/coid/1/custid/5").await);
    assert_shape(&sample("payment_history"), &payments);
    let rows = payments["payments"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["ADJUSTMENT"], "725");
    assert_eq!(rows[0]["PAYMENTSOURCE"], "1");
    assert_ne!(rows[0]["RECIEVED"], "0000-00-00 00:00:00");
    assert!(!rows[0]["TRANSACTIONID"].as_str().unwrap().is_empty());
    assert_eq!(rows[1]["ADJUSTMENT"], "500");

    // A company key cannot record another company's payment.
    put_company(&admin, 2, "Second", "2").await;
    let (key, _) = admin.create_key("school-2", &["read", "write"], None).await;
    admin
        .json(
            reqwest::Method::PUT,
            "/v1/icrtouch/keys/school-2",
            &json!({"coid": 2}),
        )
        .await
        .ok(200);
    let other = Ttu {
        api: ttu.api.clone(),
        key: key["secret"].as_str().map(str::to_owned),
    };
    let started = ok1(ttu
        .get("/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/1.00")
        .await);
    let token = started["response"].as_str().unwrap();
    let r = other
        .post_form("/accounts/record_payment", &[("token", token)])
        .await;
    fail0(&r, 403, "limited to company 2");
    assert_eq!(admin.balance("1.5").await, 1225);
}

/// Sends `n` record_payment requests at once.
async fn futures_join(ttu: &Ttu, path: &str, n: usize) -> Vec<Value> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let ttu = ttu.clone();
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move { ttu.post_form(&path, &[]).await }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(ok1(t.await.expect("task")));
    }
    out
}

#[tokio::test]
async fn event_wallets_refuse_payments_beyond_their_charges_unless_overpay_is_allowed() {
    let (_server, admin, ttu) = fixture().await;
    let strict = museum(&ttu, "0").await;
    let lenient = museum(&ttu, "1").await;
    let club = create_wallet(&ttu, &[("name", "Breakfast club"), ("type", "1")]).await;
    for w in [&strict, &lenient, &club] {
        assign(&ttu, w, "5").await;
    }
    charge(&ttu, &strict, "25.00", "2017-07-31", None).await;
    charge(&ttu, &lenient, "25.00", "2017-07-31", None).await;

    let over =
        format!("/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/25.01/wallet/{strict}");
    fail0(&ttu.get(&over).await, 409, "exceeds the 25.00 still owed");
    pay(&ttu, "5", "10.00", Some(&strict)).await;
    let over =
        format!("/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/15.01/wallet/{strict}");
    fail0(&ttu.get(&over).await, 409, "exceeds the 15.00 still owed");

    // Two payments of what is owed: the first sets its room aside when it starts, so
    // the second is refused before any money moves, in the currency's units.
    let start =
        format!("/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/15.00/wallet/{strict}");
    let a = ok1(ttu.get(&start).await)["response"]
        .as_str()
        .unwrap()
        .to_owned();
    fail0(
        &ttu.get(&start).await,
        409,
        "A payment of 15.00 exceeds the 0.00 still owed on wallet",
    );
    ok1(ttu
        .post_form("/accounts/record_payment", &[("token", &a)])
        .await);
    let w = admin.wallet(&format!("1.5.w{strict}")).await;
    assert_eq!(w["balance"], json!(0));
    // The core holds the rule for every client, the native API's too.
    let r = admin.mutate(&format!("1.5.w{strict}"), "top_up", 1).await;
    assert!(r.status >= 400, "{}", r.text);
    assert_eq!(admin.balance(&format!("1.5.w{strict}")).await, 0);

    // Overpay allowed: more than the charges is taken.
    pay(&ttu, "5", "30.00", Some(&lenient)).await;
    assert_eq!(admin.balance(&format!("1.5.w{lenient}")).await, 500);
    // A recurring wallet runs a positive balance.
    pay(&ttu, "5", "12.00", Some(&club)).await;
    assert_eq!(admin.balance(&format!("1.5.w{club}")).await, 1200);
    let details = ok1(ttu
        .get(&format!(
            "/wallets/customer_wallet_details/coid/1/cid/5/wallet/{club}"
        ))
        .await);
    assert_eq!(details["charges"], json!([]));
    assert_eq!(details["payments"][0]["CHARGEID"], "0");

    // Overpay cannot be switched while customers hold wallets under the old rule.
    let r = ttu
        .post_form(
            "/wallets/wallet_update",
            &[("coid", "1"), ("wallet", &strict), ("allowoverpay", "1")],
        )
        .await;
    fail0(&r, 409, "allowoverpay cannot change");
    let r = ttu
        .post_form(
            "/wallets/wallet_update",
            &[("coid", "1"), ("wallet", &strict), ("type", "1")],
        )
        .await;
    fail0(&r, 400, "type cannot change");
    // A closed wallet takes no charges or payments.
    ok1(ttu
        .post_form(
            "/wallets/wallet_update",
            &[("coid", "1"), ("wallet", &club), ("status", "0")],
        )
        .await);
    let r = ttu
        .get(&format!(
            "/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/1.00/wallet/{club}"
        ))
        .await;
    fail0(&r, 409, "is closed");
    let r = ttu
        .post_form(
            "/wallets/wallet_add_charge",
            &[
                ("coid", "1"),
                ("wallet", &club),
                ("charge", "1.00"),
                ("duedate", "2017-01-01"),
            ],
        )
        .await;
    fail0(&r, 409, "is closed");
}

/// Form fields of a bad charge, the HTTP status and a part of `msg`.
type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);

#[tokio::test]
async fn wallet_bad_input_changes_nothing() {
    let (_server, admin, ttu) = fixture().await;
    let w = museum(&ttu, "0").await;
    assign(&ttu, &w, "5").await;
    let cases: &[Case] = &[
        (
            &[
                ("coid", "1"),
                ("wallet", "1"),
                ("charge", "25.001"),
                ("duedate", "2017-07-31"),
            ],
            400,
            "more than 2 decimals",
        ),
        (
            &[
                ("coid", "1"),
                ("wallet", "1"),
                ("charge", "abc"),
                ("duedate", "2017-07-31"),
            ],
            400,
            "charge must be an amount",
        ),
        (
            &[
                ("coid", "1"),
                ("wallet", "1"),
                ("charge", "25.00"),
                ("duedate", "31/07/2017"),
            ],
            400,
            "duedate must be a date",
        ),
        (
            &[("coid", "1"), ("wallet", "1"), ("charge", "25.00")],
            400,
            "duedate is required",
        ),
        (
            &[
                ("coid", "1"),
                ("wallet", "1"),
                ("charge", "25.00"),
                ("duedate", "2017-07-31"),
                ("custid", "6"),
            ],
            404,
            "Customer 6 is not assigned",
        ),
        (
            &[
                ("coid", "1"),
                ("wallet", "1"),
                ("charge", "25.00"),
                ("duedate", "2017-07-31"),
                ("customers", "5,x"),
            ],
            400,
            "customers must be a whole number",
        ),
        (
            &[
                ("coid", "1"),
                ("wallet", "9"),
                ("charge", "25.00"),
                ("duedate", "2017-07-31"),
            ],
            404,
            NO_DATA,
        ),
    ];
    for (fields, http, needle) in cases {
        let r = ttu.post_form("/wallets/wallet_add_charge", fields).await;
        fail0(&r, *http, needle);
    }
    assert_eq!(admin.balance("1.5.w1").await, 0);
    let r = revoke(&ttu, "1", "5").await;
    fail0(&r, 404, NO_DATA);
    let r = ttu
        .post_form(
            "/wallets/wallet_add_customer",
            &[("coid", "1"), ("wallet", "1"), ("custid", "77")],
        )
        .await;
    fail0(&r, 404, NO_DATA);
    let r = ttu
        .get("/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/5.00/wallet/1/chargeid/4")
        .await;
    fail0(&r, 404, "Charge 4 of wallet 1 was not made");
    let r = ttu
        .get("/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/5.00/chargeid/4")
        .await;
    fail0(&r, 400, "chargeid needs wallet");
    // Nothing was charged or paid.
    assert!(admin.mutations("1.5.w1").await.is_empty());
    assert!(admin.mutations("1.5").await.is_empty());
}
