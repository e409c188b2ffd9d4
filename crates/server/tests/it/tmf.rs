//! The TMF654 / Oracle BRM dialect from the outside: Oracle's two top-up examples on the
//! BRM mount, the same data on the TM Forum mount, adjustments, transfers,
//! reservations that hold, commit and release exactly, sums and history, lists and
//! the errors of bad input.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const TMF: &str = "/tmf-api/prepayBalanceManagement/v4";
const BRM: &str = "/brm/prepayBalanceManagement/v4";
const BUCKET: &str = "0.0.0.1+-balance_group+6336883+840+0";
const ACCOUNT: &str = "0.0.0.1+-account+6340627";

/// A server with Oracle's bucket, holding `initial` USD.
async fn oracle_bucket(initial: &str) -> (Server, Api) {
    let server = Server::start().await;
    let api = server.admin();
    let b = api
        .post(
            &format!("{BRM}/bucket"),
            &json!({"id": BUCKET, "name": "Main balance",
                "partyAccount": {"id": ACCOUNT, "name": "Alice Rose"},
                "remainingValue": {"amount": initial, "units": "USD"}}),
        )
        .await;
    assert_eq!(b.status, 201, "{}", b.text);
    (server, api)
}

fn num(v: &Value) -> f64 {
    // Only the tests read numbers as floats, to compare them with Oracle's.
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn assert_error(r: &Resp, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.text);
    let e = &r.json;
    for key in ["code", "reason", "message"] {
        assert!(e[key].is_string(), "{key} in {e}");
    }
    assert_eq!(e["status"], status.to_string(), "{e}");
    assert_eq!(e["@type"], "Error");
    e.clone()
}

#[tokio::test]
async fn oracles_one_time_example() {
    let (_server, api) = oracle_bucket("192").await;
    // Exactly Oracle's request, sent as Oracle's curl example sends it (no JSON type).
    let body = br#"{
   "amount": {
      "amount":"2",
      "units":"USD"
   },
   "bucket": {
      "id" : "0.0.0.1+-balance_group+6336883+840+0"
   }
}"#;
    let r = api
        .send(
            Method::POST,
            &format!("{BRM}/topupBalance"),
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body.to_vec()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json.clone();
    let id = v["id"].as_str().unwrap();
    assert!(
        r.header("location")
            .unwrap()
            .ends_with(&format!("{BRM}/topupBalance/{id}"))
    );
    assert_eq!(v["@baseType"], "TopupBalance");
    assert_eq!(v["@type"], "TopupBalance");
    assert!(v["@schemaLocation"].is_null());
    assert_eq!(v["status"], "CONFIRMED");
    assert_eq!(num(&v["amount"]["amount"]), 2.0);
    assert_eq!(v["amount"]["units"], "USD");
    assert_eq!(v["bucket"]["id"], BUCKET);
    assert_eq!(v["bucket"]["@type"], "BucketRef");
    assert!(
        v["bucket"]["href"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{BRM}/bucket/{BUCKET}"))
    );
    assert_eq!(v["isAutoTopup"], false);
    assert!(v["numberOfPeriods"].is_null() && v["recurringPeriod"].is_null());
    assert_eq!(v["partyAccount"]["id"], ACCOUNT);
    assert_eq!(v["partyAccount"]["name"], "Alice Rose");
    assert_eq!(v["partyAccount"]["@type"], "PartyAccountRef");
    assert_eq!(num(&v["payment"]["amount"]["value"]), 2.0);
    assert_eq!(v["payment"]["amount"]["unit"], "USD");
    assert_eq!(v["usageType"], "monetary");
    assert_eq!(v["voucher"], "");
    assert!(v["requestedDate"].is_string() && v["confirmationDate"].is_string());
    // Oracle BRM counts a prepaid balance as a debt: 192 of credit is -192.
    let ib = &v["impactedBucket"][0];
    assert_eq!(ib["@type"], "ImpactedBucket");
    assert_eq!(num(&ib["amountBefore"]["amount"]), -192.0);
    assert_eq!(num(&ib["amountAfter"]["amount"]), -194.0);
    assert_eq!(ib["bucket"]["id"], BUCKET);
    assert_eq!(num(&ib["item"][0]["amount"]["amount"]), 2.0);
    for key in [
        "channel",
        "description",
        "reason",
        "requestor",
        "relatedParty",
    ] {
        assert!(v.get(key).is_some_and(Value::is_null), "{key}");
    }

    // The same top-up, read back on both mounts.
    let again = api.get(&format!("{BRM}/topupBalance/{id}")).await.ok(200);
    assert_eq!(again["impactedBucket"], v["impactedBucket"]);
    let tmf = api.get(&format!("{TMF}/topupBalance/{id}")).await.ok(200);
    assert_eq!(tmf["status"], "completed");
    assert_eq!(tmf["amount"], json!({"amount": 2.0, "units": "USD"}));
    assert!(tmf.get("impactedBucket").is_none() && tmf.get("channel").is_none());
    let bucket = api.get(&format!("{TMF}/bucket/{BUCKET}")).await.ok(200);
    assert_eq!(num(&bucket["remainingValue"]["amount"]), 194.0);
    assert_eq!(bucket["name"], "Main balance");
}

#[tokio::test]
async fn oracles_recurring_example() {
    let (_server, api) = oracle_bucket("194").await;
    let body = json!({
        "amount": {"amount": "2", "units": "USD"},
        "recurringPeriod": "daily",
        "isAutoTopup": "true",
        "numberOfPeriods": "2",
        "partyAccount": {"id": ACCOUNT}
    });
    let v = api
        .post(&format!("{BRM}/topupBalance"), &body)
        .await
        .ok(201);
    assert_eq!(v["status"], "CONFIRMED");
    assert_eq!(v["isAutoTopup"], true);
    assert_eq!(v["numberOfPeriods"], 2);
    assert_eq!(v["recurringPeriod"], "1 Day");
    assert_eq!(v["bucket"]["id"], BUCKET);
    let ib = &v["impactedBucket"][0];
    assert_eq!(num(&ib["amountBefore"]["amount"]), -194.0);
    assert_eq!(num(&ib["amountAfter"]["amount"]), -196.0);
    let tmf = api
        .get(&format!("{TMF}/topupBalance/{}", v["id"].as_str().unwrap()))
        .await
        .ok(200);
    assert_eq!(tmf["recurringPeriod"], "daily");
    assert_eq!(tmf["isAutoTopup"], true);
}

#[tokio::test]
async fn amounts_are_exact_and_checked() {
    let (_server, api) = oracle_bucket("0").await;
    let topup = |amount: Value, units: &str| {
        json!({"amount": {"amount": amount, "units": units}, "bucket": {"id": BUCKET},
            "description": "shop", "channel": {"id": "web"}})
    };
    // A number with a fraction is read exactly, never through a float.
    let v = api
        .post(&format!("{TMF}/topupBalance"), &topup(json!(0.1), "USD"))
        .await
        .ok(201);
    assert_eq!(v["description"], "shop");
    assert_eq!(v["channel"]["id"], "web");
    let raw = br#"{"amount": {"amount": 1234567890123.45, "units": "USD"}, "bucket": {"id": "0.0.0.1+-balance_group+6336883+840+0"}}"#;
    let r = api
        .send(
            Method::POST,
            &format!("{TMF}/topupBalance"),
            &[("content-type", "application/json")],
            Some(raw.to_vec()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.text.contains("\"amount\":1234567890123.45"), "{}", r.text);
    let b = api.get(&format!("{TMF}/bucket/{BUCKET}")).await;
    assert!(b.text.contains("\"amount\":1234567890123.55"), "{}", b.text);

    let e = assert_error(
        &api.post(
            &format!("{TMF}/topupBalance"),
            &topup(json!("2.001"), "USD"),
        )
        .await,
        400,
    );
    assert_eq!(e["code"], "invalid_amount");
    assert_error(
        &api.post(&format!("{TMF}/topupBalance"), &topup(json!(2.001), "USD"))
            .await,
        400,
    );
    assert_error(
        &api.post(&format!("{TMF}/topupBalance"), &topup(json!("two"), "USD"))
            .await,
        400,
    );
    assert_error(
        &api.post(&format!("{TMF}/topupBalance"), &topup(json!("-1"), "USD"))
            .await,
        400,
    );
    let e = assert_error(
        &api.post(&format!("{TMF}/topupBalance"), &topup(json!("1"), "EUR"))
            .await,
        400,
    );
    assert_eq!(e["code"], "unit_mismatch");
    let e = assert_error(
        &api.post(
            &format!("{BRM}/topupBalance"),
            &json!({"amount": {"amount": "1", "units": "USD"}, "bucket": {"id": "nope"}}),
        )
        .await,
        404,
    );
    assert_eq!(e["code"], "bucket_not_found");
    assert_error(
        &api.send(
            Method::POST,
            &format!("{TMF}/topupBalance"),
            &[("content-type", "application/json")],
            Some(b"{not json".to_vec()),
        )
        .await,
        400,
    );
    assert_error(&api.get(&format!("{TMF}/topupBalance/nope")).await, 404);
    assert_error(
        &api.get(&format!("{TMF}/topupBalance/{}", uuid_like()))
            .await,
        404,
    );
    assert_error(&server_less_get(&api, &format!("{TMF}/bucket")).await, 401);
}

fn uuid_like() -> &'static str {
    "0191d8a4-7a1f-7c3e-9d2b-5f1e2d3c4b5a"
}

async fn server_less_get(api: &Api, path: &str) -> Resp {
    api.with_auth(Auth::None).get(path).await
}

#[tokio::test]
async fn reservations_hold_commit_and_release_exactly() {
    let (_server, api) = oracle_bucket("100").await;
    let reserve = |amount: &str| {
        json!({"amount": {"amount": amount, "units": "USD"}, "bucket": {"id": BUCKET},
            "partyAccount": {"id": ACCOUNT}, "usageType": "monetary", "description": "call"})
    };
    let bucket = async || api.get(&format!("{TMF}/bucket/{BUCKET}")).await.ok(200);

    let r = api
        .post(&format!("{TMF}/reserveBalance"), &reserve("40"))
        .await
        .ok(201);
    assert_eq!(r["status"], "created");
    let id = r["id"].as_str().unwrap().to_owned();
    let b = bucket().await;
    assert_eq!(num(&b["remainingValue"]["amount"]), 60.0);
    assert_eq!(num(&b["reservedValue"]["amount"]), 40.0);
    // More than is left is refused while the reservation holds.
    let e = assert_error(
        &api.post(&format!("{TMF}/reserveBalance"), &reserve("60.01"))
            .await,
        409,
    );
    assert_eq!(e["code"], "insufficient_funds");

    // Commit 25 of the 40: 25 is spent, 15 comes back.
    let c = api
        .patch(
            &format!("{TMF}/reserveBalance/{id}"),
            &json!({"status": "completed", "reason": "call ended",
                "amount": {"amount": "25", "units": "USD"}}),
        )
        .await
        .ok(200);
    assert_eq!(c["status"], "completed");
    assert_eq!(c["reason"], "call ended");
    assert_eq!(c["description"], "call");
    let b = bucket().await;
    assert_eq!(num(&b["remainingValue"]["amount"]), 75.0);
    assert_eq!(num(&b["reservedValue"]["amount"]), 0.0);
    let again = api
        .patch(
            &format!("{TMF}/reserveBalance/{id}"),
            &json!({"status": "cancelled", "reason": "too late"}),
        )
        .await;
    assert_eq!(assert_error(&again, 409)["code"], "not_pending");

    // Release a second one entirely, by PATCH and by DELETE.
    for how in ["patch", "delete"] {
        let r = api
            .post(&format!("{BRM}/reserveBalance"), &reserve("30"))
            .await
            .ok(201);
        assert_eq!(r["status"], "CREATED");
        let id = r["id"].as_str().unwrap().to_owned();
        assert_eq!(num(&bucket().await["remainingValue"]["amount"]), 45.0);
        if how == "patch" {
            let v = api
                .patch(
                    &format!("{BRM}/reserveBalance/{id}"),
                    &json!({"status": "cancelled", "reason": "hung up"}),
                )
                .await
                .ok(200);
            assert_eq!(v["status"], "CANCELLED");
        } else {
            let d = api
                .send(
                    Method::DELETE,
                    &format!("{TMF}/reserveBalance/{id}"),
                    &[],
                    None,
                )
                .await;
            assert_eq!(d.status, 204, "{}", d.text);
        }
        let b = bucket().await;
        assert_eq!(num(&b["remainingValue"]["amount"]), 75.0);
        assert_eq!(num(&b["reservedValue"]["amount"]), 0.0);
        let v = api.get(&format!("{TMF}/reserveBalance/{id}")).await.ok(200);
        assert_eq!(v["status"], "cancelled");
    }
    let list = api
        .get(&format!("{TMF}/reserveBalance?status=cancelled"))
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.header("x-total-count"), Some("2"));
}

#[tokio::test]
async fn adjustments_transfers_sums_and_history() {
    let (_server, api) = oracle_bucket("10").await;
    let other = api
        .post(
            &format!("{TMF}/bucket"),
            &json!({"id": "savings", "partyAccount": {"id": ACCOUNT},
                "remainingValue": {"units": "USD"}}),
        )
        .await
        .ok(201);
    assert_eq!(num(&other["remainingValue"]["amount"]), 0.0);
    let minutes = api
        .post(
            &format!("{TMF}/bucket"),
            &json!({"partyAccount": {"id": ACCOUNT}, "remainingValue": {"units": "minutes",
                "amount": 60}}),
        )
        .await
        .ok(201);
    assert_eq!(minutes["usageType"], "voice");
    assert_eq!(
        minutes["remainingValue"],
        json!({"amount": 60, "units": "minutes"})
    );

    let a = api
        .post(
            &format!("{TMF}/adjustBalance"),
            &json!({"amount": {"amount": -1.5, "units": "USD"}, "bucket": {"id": BUCKET},
                "usageType": "monetary", "adjustType": "oneTime", "reason": "goodwill"}),
        )
        .await
        .ok(201);
    assert_eq!(num(&a["amount"]["amount"]), -1.5);
    assert_eq!(a["status"], "completed");

    let t = api
        .post(
            &format!("{TMF}/transferBalance"),
            &json!({"amount": {"amount": "3", "units": "USD"}, "bucket": {"id": BUCKET},
                "receiverBucket": {"id": "savings"}, "usageType": "monetary",
                "receiverBucketUsageType": "monetary", "reason": "saving",
                "channel": {"id": "app"}, "logicalResource": [{"id": "msisdn-1"}],
                "receiverLogicalResource": {"id": "msisdn-1"}}),
        )
        .await
        .ok(201);
    assert_eq!(t["receiverBucket"]["id"], "savings");
    let tid = t["id"].as_str().unwrap();
    let t2 = api
        .get(&format!("{BRM}/transferBalance/{tid}"))
        .await
        .ok(200);
    assert_eq!(t2["status"], "CONFIRMED");
    assert_eq!(t2["channel"]["id"], "app");
    let e = api
        .send(
            Method::DELETE,
            &format!("{TMF}/transferBalance/{tid}"),
            &[],
            None,
        )
        .await;
    assert_error(&e, 409);

    let sums = api
        .get(&format!(
            "{TMF}/accumulatedBalance?partyAccount.id={}",
            ACCOUNT.replace('+', "%2B")
        ))
        .await;
    assert_eq!(sums.status, 200, "{}", sums.text);
    assert_eq!(sums.header("x-total-count"), Some("2"));
    let usd = sums
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["totalBalance"]["units"] == "USD")
        .unwrap()
        .clone();
    assert_eq!(num(&usd["totalBalance"]["amount"]), 8.5);
    assert_eq!(usd["bucket"].as_array().unwrap().len(), 2);
    let one = api
        .get(&format!(
            "{TMF}/accumulatedBalance/{}",
            usd["id"].as_str().unwrap()
        ))
        .await
        .ok(200);
    assert_eq!(one["totalBalance"], usd["totalBalance"]);

    let h = api
        .get(&format!(
            "{TMF}/balanceActionHistory?bucket.id={}",
            BUCKET.replace('+', "%2B")
        ))
        .await;
    assert_eq!(h.status, 200, "{}", h.text);
    // The initial top-up, the adjustment and the transfer out.
    assert_eq!(h.header("x-total-count"), Some("3"));
    let first = h.json[0]["id"].as_str().unwrap();
    api.get(&format!("{BRM}/balanceActionHistory/{first}"))
        .await
        .ok(200);
}

#[tokio::test]
async fn lists_page_filter_and_select() {
    let (_server, api) = oracle_bucket("0").await;
    for i in 1..=5 {
        api.post(
            &format!("{TMF}/topupBalance"),
            &json!({"amount": {"amount": i, "units": "USD"}, "bucket": {"id": BUCKET},
                "channel": {"id": if i % 2 == 0 { "even" } else { "odd" }}}),
        )
        .await
        .ok(201);
    }
    let r = api
        .get(&format!(
            "{TMF}/topupBalance?offset=1&limit=2&fields=amount,status"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-total-count"), Some("5"));
    assert_eq!(r.header("x-result-count"), Some("2"));
    let items = r.json.as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["amount", "status"]);
    }
    assert_eq!(num(&items[0]["amount"]["amount"]), 2.0);

    let r = api
        .get(&format!(
            "{TMF}/topupBalance?channel.id=even&status=completed"
        ))
        .await;
    assert_eq!(r.header("x-total-count"), Some("2"), "{}", r.text);
    let r = api
        .get(&format!(
            "{TMF}/topupBalance?partyAccount.id={}&limit=1000",
            ACCOUNT.replace('+', "%2B")
        ))
        .await;
    assert_eq!(r.header("x-total-count"), Some("5"));
    let r = api
        .get(&format!("{TMF}/topupBalance?partyAccount.id=someone-else"))
        .await;
    assert_eq!(r.header("x-total-count"), Some("0"));
    let r = api.get(&format!("{TMF}/bucket?usageType=monetary")).await;
    assert_eq!(r.header("x-total-count"), Some("1"), "{}", r.text);
    assert_error(
        &api.get(&format!("{TMF}/topupBalance?limit=1001")).await,
        400,
    );
    assert_error(&api.get(&format!("{TMF}/topupBalance?offset=x")).await, 400);
    let g = api
        .get(&format!("{TMF}/bucket/{BUCKET}?fields=id,remainingValue"))
        .await
        .ok(200);
    assert_eq!(g.as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn requests_no_handler_takes_answer_in_the_tmf_shape() {
    let (_server, api) = oracle_bucket("1").await;
    for mount in [TMF, BRM] {
        for path in [
            "/nothing",
            "/bucket/a/b",
            "/hub/a/b",
            "/topupBalance/x/y",
            "",
        ] {
            let r = api.get(&format!("{mount}{path}")).await;
            assert_eq!(r.json["@type"], "Error", "{mount}{path}: {}", r.text);
            let e = assert_error(&r, 404);
            assert_eq!(e["code"], "resource_not_found", "{mount}{path}: {e}");
        }
        // A segment that is not UTF-8 once decoded is refused before any handler.
        let r = api.get(&format!("{mount}/bucket/%FF")).await;
        assert_error(&r, 400);
        let r = api
            .send(Method::DELETE, &format!("{mount}/hub/%FF"), &[], None)
            .await;
        assert_error(&r, 400);
    }
}

#[tokio::test]
async fn number_filters_compare_values_and_an_empty_fields_answers_whole_resources() {
    let (_server, api) = oracle_bucket("0").await;
    for amount in [json!("3.00"), json!(4), json!(3)] {
        api.post(
            &format!("{TMF}/topupBalance"),
            &json!({"amount": {"amount": amount, "units": "USD"}, "bucket": {"id": BUCKET}}),
        )
        .await
        .ok(201);
    }
    // `amount.amount=3` matches 3.00 as well as 3: numbers compare by value.
    for value in ["3", "3.0", "3.000", "300e-2"] {
        let r = api
            .get(&format!("{TMF}/topupBalance?amount.amount={value}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json.as_array().unwrap().len(), 2, "{value}: {}", r.text);
    }
    let r = api
        .get(&format!("{TMF}/topupBalance?amount.amount=3.01"))
        .await;
    assert_eq!(r.json.as_array().unwrap().len(), 0, "{}", r.text);
    // An empty `fields=` selects nothing: whole resources, as without it.
    let whole = api.get(&format!("{TMF}/topupBalance")).await.ok(200);
    let empty = api
        .get(&format!("{TMF}/topupBalance?fields="))
        .await
        .ok(200);
    assert_eq!(whole, empty);
    assert!(
        empty[0]["id"].is_string() && empty[0]["amount"].is_object(),
        "{empty}"
    );
}

#[tokio::test]
async fn hrefs_follow_the_proxy_in_front() {
    let (_server, api) = oracle_bucket("0").await;
    for headers in [
        vec![
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "api.example.com"),
        ],
        vec![(
            "forwarded",
            "for=192.0.2.60;proto=https;host=api.example.com",
        )],
    ] {
        let r = api
            .send(
                Method::GET,
                &format!("{TMF}/bucket/{BUCKET}"),
                &headers,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.json["href"],
            format!("https://api.example.com{TMF}/bucket/{BUCKET}"),
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn tmf630_operators_filter_and_unsupported_ones_are_errors() {
    let (_server, api) = oracle_bucket("0").await;
    for amount in ["1", "2.50", "4"] {
        api.post(
            &format!("{TMF}/topupBalance"),
            &json!({"amount": {"amount": amount, "units": "USD"}, "bucket": {"id": BUCKET}}),
        )
        .await
        .ok(201);
    }
    for (query, count) in [
        ("amount.amount.gt=1", 2),
        ("amount.amount.gte=2.5&amount.amount.lt=4", 1),
        ("amount.amount.ne=4", 2),
        ("amount.amount=1;amount.amount=4", 2),
        ("amount.amount=1&amount.amount=2.5", 2),
        ("requestedDate.gt=2000-01-01T00:00:00Z", 3),
        ("requestedDate.lt=2000-01-01T00:00:00Z", 0),
    ] {
        let r = api.get(&format!("{TMF}/topupBalance?{query}")).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert_eq!(
            r.json.as_array().unwrap().len(),
            count,
            "{query}: {}",
            r.text
        );
    }
    for query in ["amount.amount.gt=lots", "status=completed;amount.amount=1"] {
        let e = assert_error(&api.get(&format!("{TMF}/topupBalance?{query}")).await, 400);
        assert_eq!(e["code"], "invalid_query", "{query}");
    }
}

#[tokio::test]
async fn the_tmf_mount_answers_only_the_statuses_its_file_lists() {
    let (_server, api) = oracle_bucket("0").await;
    // A POST naming a bucket that is not there is a bad request on the TMF mount...
    let body = json!({"amount": {"amount": "1", "units": "USD"}, "bucket": {"id": "nope"}});
    let e = assert_error(&api.post(&format!("{TMF}/topupBalance"), &body).await, 400);
    assert_eq!(e["status"], "400");
    assert!(e["code"].as_str().unwrap().ends_with("not_found"), "{e}");
    // ... and keeps Oracle's 404 on the BRM mount.
    assert_error(&api.post(&format!("{BRM}/topupBalance"), &body).await, 404);
    // A refusal of a well-formed request is a conflict with the ledger's state.
    let reserve = json!({"amount": {"amount": "5", "units": "USD"}, "bucket": {"id": BUCKET},
        "partyAccount": {"id": ACCOUNT}});
    let e = assert_error(
        &api.post(&format!("{TMF}/reserveBalance"), &reserve).await,
        409,
    );
    assert_eq!(
        (e["code"].as_str(), e["status"].as_str()),
        (Some("insufficient_funds"), Some("409"))
    );
    let e = assert_error(
        &api.post(&format!("{BRM}/reserveBalance"), &reserve).await,
        422,
    );
    assert_eq!(e["code"], "insufficient_funds");
}

#[tokio::test]
async fn create_bodies_carry_references_as_the_tmf_file_requires() {
    let (_server, api) = oracle_bucket("10").await;
    let with = |extra: Value| {
        let mut body = json!({"amount": {"amount": "1", "units": "USD"}, "bucket": {"id": BUCKET}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (extra, field) in [
        (json!({"channel": {"name": "web"}}), "channel.id"),
        (
            json!({"requestor": {"id": "agent-7"}}),
            "requestor.@referredType",
        ),
        (
            json!({"product": [{"id": "p1"}, {"name": "x"}]}),
            "product[1].id",
        ),
        (json!({"partyAccount": "acct"}), "partyAccount"),
        (json!({"bucket": {}}), "bucket.id"),
    ] {
        let e = assert_error(
            &api.post(&format!("{TMF}/topupBalance"), &with(extra.clone()))
                .await,
            400,
        );
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{extra}: {e}"
        );
    }
    let ok = with(json!({"channel": {"id": "web"},
        "requestor": {"id": "agent-7", "@referredType": "Individual"},
        "product": [{"id": "p1"}]}));
    api.post(&format!("{TMF}/topupBalance"), &ok).await.ok(201);
    // Oracle's BRM mount keeps taking what its samples send.
    api.post(
        &format!("{BRM}/topupBalance"),
        &with(json!({"channel": {"name": "web"}})),
    )
    .await
    .ok(201);
}
