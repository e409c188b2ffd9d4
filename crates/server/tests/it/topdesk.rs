//! The TOPdesk Prepaid Services dialect, black-box: every request and response shape
//! of TOPdesk's document, accounts, repeats by id, the service user, authentication as
//! TOPdesk clients send it, and the isolation of tenants and customers.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn for_href(customer: &str) -> String {
    format!("https://acme.topdesk.net/tas/api/branches/id/{customer}")
}

async fn account(api: &Api, customer: &str) -> Resp {
    api.get(&format!(
        "{TOPDESK_ROOT}/prepaid-services-accounts/{customer}"
    ))
    .await
}

async fn mutation(api: &Api, id: &str) -> Resp {
    api.get(&format!("{TOPDESK_ROOT}/balance-mutations/{id}"))
        .await
}

/// Every mutation of one customer, full, walking all pages.
async fn customer_mutations(api: &Api, customer: &str) -> Vec<Value> {
    let query = format!("_links.for.id=={customer}");
    let page = hal_ok(
        topdesk_list(
            api,
            &[
                ("query", &query),
                ("compact", "false"),
                ("pageSize", "1000"),
            ],
        )
        .await,
        200,
    );
    assert!(
        page["_links"].get("next").is_none(),
        "one page is enough here: {page}"
    );
    page["_embedded"]["item"].as_array().unwrap().clone()
}

/// Asserts that the account's balance is the sum of the customer's mutations.
async fn assert_balance_is_sum(api: &Api, customer: &str) -> i64 {
    let sum: i64 = customer_mutations(api, customer)
        .await
        .iter()
        .map(|m| int(m, "amountOfMinutes"))
        .sum();
    let acc = hal_ok(account(api, customer).await, 200);
    assert_eq!(
        int(&acc, "balance"),
        sum,
        "balance is not the sum of mutations: {acc}"
    );
    sum
}

#[tokio::test]
async fn documented_shapes_round_trip() {
    let server = Server::start().await;
    let api = server.admin();
    let base = topdesk_base(&api);
    let customer = uuid();
    let first = uuid();

    let location = topdesk_create(
        &api,
        &topdesk_dto(
            &customer,
            Some(&first),
            600,
            "2026-11-25T11:00:00.000+0100",
            Some("invoice 17"),
        ),
    )
    .await;
    assert_eq!(location, format!("{base}/balance-mutations/{first}"));

    let got = hal_ok(mutation(&api, &first).await, 200);
    assert_eq!(
        got,
        json!({
            "_links": {
                "self": {"href": location},
                "for": {"href": for_href(&customer)},
                "account": {"href": format!("{base}/prepaid-services-accounts/{customer}")}
            },
            "amountOfMinutes": 600,
            "modificationDate": "2026-11-25T10:00:00.000000Z",
            "on": {"type": "EXTERNAL_SYSTEM", "reference": "invoice 17"}
        })
    );

    // Without a self link the server chooses the id; application/json is read too, and
    // an empty referenceLink is what the document asks for.
    let mut body = topdesk_dto(&customer, None, -90, "2026-11-26", None);
    body["on"]["referenceLink"] = json!("");
    let r = api
        .post(&format!("{TOPDESK_ROOT}/balance-mutations"), &body)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let second_href = r.header("location").unwrap().to_owned();
    let second = last_segment(&second_href).to_owned();
    assert!(uuid::Uuid::try_parse(&second).is_ok(), "{second_href}");
    let got = hal_ok(mutation(&api, &second).await, 200);
    assert_eq!(
        got,
        json!({
            "_links": {
                "self": {"href": second_href},
                "for": {"href": for_href(&customer)},
                "account": {"href": format!("{base}/prepaid-services-accounts/{customer}")}
            },
            "amountOfMinutes": -90,
            "modificationDate": "2026-11-26T00:00:00.000000Z",
            "on": {"type": "EXTERNAL_SYSTEM"}
        })
    );

    // The list: compact by default.
    let page = hal_ok(topdesk_list(&api, &[]).await, 200);
    assert_eq!(page["page"], 1);
    assert_eq!(page["total"], 2);
    assert_eq!(page["maxPageSize"], 1000);
    let items = page["_embedded"]["item"].as_array().unwrap();
    assert_eq!(
        items[0],
        json!({
            "_links": {
                "self": {"href": location},
                "for": {"href": for_href(&customer)},
                "account": {"href": format!("{base}/prepaid-services-accounts/{customer}")}
            },
            "amountOfMinutes": 600,
            "modificationDate": "2026-11-25T10:00:00.000000Z"
        })
    );
    assert_eq!(items.len(), 2);
    let links = &page["_links"];
    let page1 = format!("{base}/balance-mutations?page=1&pageSize=100");
    assert_eq!(links["self"]["href"], page1);
    assert_eq!(links["first"]["href"], page1);
    assert_eq!(links["last"]["href"], page1);
    assert!(
        links.get("prev").is_none() && links.get("next").is_none(),
        "{links}"
    );
    assert_eq!(
        links["item"],
        json!([{"href": location}, {"href": second_href}])
    );

    // Full DTOs with compact=false.
    let page = hal_ok(topdesk_list(&api, &[("compact", "false")]).await, 200);
    assert_eq!(
        page["_embedded"]["item"][0],
        hal_ok(mutation(&api, &first).await, 200)
    );
    assert_eq!(page["_embedded"]["item"][1], got);
    assert_eq!(
        page["_links"]["self"]["href"],
        format!("{base}/balance-mutations?page=1&pageSize=100&compact=false")
    );

    // The account.
    let acc = hal_ok(account(&api, &customer).await, 200);
    assert_eq!(
        acc,
        json!({
            "_links": {
                "latestTopUp": {"href": location},
                "of": {"href": for_href(&customer)},
                "self": {"href": format!("{base}/prepaid-services-accounts/{customer}")}
            },
            "balance": 510
        })
    );
    // The customer and its minutes wallet are visible through the native API too.
    let wallet = api.wallet(&customer).await;
    assert_eq!(
        (wallet["unit"].as_str(), wallet["scale"].as_i64()),
        (Some("MIN"), Some(0))
    );
    assert_eq!(wallet["balance"], 510);
    assert!(wallet["floor"].is_null(), "no floor: {wallet}");
}

#[tokio::test]
async fn accounts_exist_after_the_first_top_up() {
    let server = Server::start().await;
    let api = server.admin();
    let base = topdesk_base(&api);
    let customer = uuid();

    text_error(
        &account(&api, &customer).await,
        404,
        "no prepaid services account",
    );
    topdesk_create(
        &api,
        &topdesk_dto(&customer, None, -30, "2026-01-01T08:00:00Z", None),
    )
    .await;
    text_error(&account(&api, &customer).await, 404, "no top-up");
    // Zero minutes are recorded, change nothing, and are no top-up.
    let zero = topdesk_create(
        &api,
        &topdesk_dto(&customer, None, 0, "2026-01-01T09:00:00Z", Some("note")),
    )
    .await;
    text_error(&account(&api, &customer).await, 404, "no top-up");
    assert_eq!(
        int(
            &hal_ok(topdesk_follow(&api, &zero).await, 200),
            "amountOfMinutes"
        ),
        0
    );

    let top_up = topdesk_create(
        &api,
        &topdesk_dto(&customer, None, 100, "2026-01-02T08:00:00Z", None),
    )
    .await;
    let acc = hal_ok(account(&api, &customer).await, 200);
    assert_eq!(acc["balance"], 70);
    assert_eq!(acc["_links"]["latestTopUp"]["href"], top_up);
    topdesk_create(
        &api,
        &topdesk_dto(&customer, None, -500, "2026-01-03T08:00:00Z", None),
    )
    .await;
    let later = topdesk_create(
        &api,
        &topdesk_dto(&customer, None, 20, "2026-01-04T08:00:00Z", None),
    )
    .await;
    let acc = hal_ok(account(&api, &customer).await, 200);
    assert_eq!(
        acc["balance"], -410,
        "corrections may take the balance below zero"
    );
    assert_eq!(acc["_links"]["latestTopUp"]["href"], later);
    assert_eq!(assert_balance_is_sum(&api, &customer).await, -410);

    // The id of an account is a UUID: anything else is 400, an unknown one 404, and an
    // upper-case spelling is the same customer.
    text_error(&account(&api, "branch-12").await, 400, "id");
    text_error(
        &account(&api, &uuid()).await,
        404,
        "no prepaid services account",
    );
    let acc = hal_ok(account(&api, &customer.to_uppercase()).await, 200);
    assert_eq!(
        acc["_links"]["self"]["href"],
        format!("{base}/prepaid-services-accounts/{customer}")
    );
}

#[tokio::test]
async fn bad_mutations_are_400_naming_the_field() {
    let server = Server::start().await;
    let api = server.admin();
    let c = uuid();
    let good = || topdesk_dto(&c, Some(&uuid()), 60, "2026-11-25T10:00:00Z", Some("r"));
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "_links",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("_links");
            }),
        ),
        (
            "`for`",
            Box::new(|v| {
                v["_links"].as_object_mut().unwrap().remove("for");
            }),
        ),
        (
            "_links.for.href",
            Box::new(|v| {
                v["_links"]["for"]["href"] =
                    json!("https://acme.topdesk.net/tas/api/branches/id/12")
            }),
        ),
        (
            "_links.for.href",
            Box::new(|v| v["_links"]["for"]["href"] = json!("")),
        ),
        (
            "_links.for.href",
            Box::new(|v| v["_links"]["for"]["href"] = json!(42)),
        ),
        (
            "_links.self.href",
            Box::new(|v| {
                v["_links"]["self"]["href"] =
                    json!("https://acme.topdesk.net/balance-mutations/abc")
            }),
        ),
        (
            "amountOfMinutes",
            Box::new(|v| v["amountOfMinutes"] = json!(600_001)),
        ),
        (
            "amountOfMinutes",
            Box::new(|v| v["amountOfMinutes"] = json!(-600_001)),
        ),
        (
            "amountOfMinutes",
            Box::new(|v| v["amountOfMinutes"] = json!(12.5)),
        ),
        (
            "amountOfMinutes",
            Box::new(|v| v["amountOfMinutes"] = json!("60")),
        ),
        (
            "amountOfMinutes",
            Box::new(|v| v["amountOfMinutes"] = json!(null)),
        ),
        (
            "amountOfMinutes",
            Box::new(|v| v["amountOfMinutes"] = json!(u64::MAX)),
        ),
        (
            "`amountOfMinutes`",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("amountOfMinutes");
            }),
        ),
        (
            "modificationDate",
            Box::new(|v| v["modificationDate"] = json!("25-11-2026")),
        ),
        (
            "modificationDate",
            Box::new(|v| v["modificationDate"] = json!("2026-11-25T25:00:00Z")),
        ),
        (
            "modificationDate",
            Box::new(|v| v["modificationDate"] = json!(1_795_000_000)),
        ),
        (
            "`on`",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("on");
            }),
        ),
        ("on.type", Box::new(|v| v["on"]["type"] = json!("INCIDENT"))),
        (
            "on.type",
            Box::new(|v| v["on"]["type"] = json!("CHANGE_ACTIVITY")),
        ),
        (
            "on.type",
            Box::new(|v| v["on"]["type"] = json!("external_system")),
        ),
        (
            "on.referenceLink",
            Box::new(|v| {
                v["on"]["referenceLink"] = json!("https://acme.topdesk.net/tas/api/incidents/id/1")
            }),
        ),
        (
            "on.reference",
            Box::new(|v| v["on"]["reference"] = json!("r".repeat(256))),
        ),
        (
            "on.reference",
            Box::new(|v| v["on"]["reference"] = json!("tab\there")),
        ),
        ("`colour`", Box::new(|v| v["on"]["colour"] = json!("red"))),
        ("`balance`", Box::new(|v| v["balance"] = json!(5))),
    ];
    for (needle, change) in cases {
        let mut body = good();
        change(&mut body);
        let r = topdesk_post(&api, &body).await;
        text_error(&r, 400, needle);
    }
    // Not JSON, empty, the wrong media type, too large.
    let path = format!("{TOPDESK_ROOT}/balance-mutations");
    let hal = [("content-type", "application/hal+json")];
    text_error(
        &api.send(Method::POST, &path, &hal, Some(b"{\"_links\": ".to_vec()))
            .await,
        400,
        "JSON",
    );
    text_error(
        &api.send(Method::POST, &path, &hal, Some(Vec::new())).await,
        400,
        "JSON",
    );
    text_error(
        &api.send(Method::POST, &path, &hal, Some(b"[]".to_vec()))
            .await,
        400,
        "body",
    );
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let body = serde_json::to_vec(&good()).unwrap();
    text_error(
        &api.send(Method::POST, &path, &form, Some(body)).await,
        415,
        "application/hal+json",
    );
    let mut huge = good();
    huge["on"]["reference"] = json!("x".repeat(70_000));
    // Sent with `Expect: 100-continue`, so that the refusal on the declared length
    // arrives before the body is written.
    let r = api
        .post_expect_continue(
            &path,
            "application/hal+json",
            &serde_json::to_vec(&huge).unwrap(),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(r.content_type().starts_with("text/plain"), "{r:?}");
    // None of it was recorded.
    let page = hal_ok(topdesk_list(&api, &[]).await, 200);
    assert_eq!(page["total"], 0, "{page}");

    // The limits themselves are accepted.
    for minutes in [600_000, -600_000] {
        topdesk_create(
            &api,
            &topdesk_dto(&c, None, minutes, "2026-11-25T10:00:00Z", None),
        )
        .await;
    }
    let at = topdesk_create(
        &api,
        &topdesk_dto(&c, None, 1, "2026-11-25T10:00:00Z", Some(&"ü".repeat(255))),
    )
    .await;
    let got = hal_ok(topdesk_follow(&api, &at).await, 200);
    assert_eq!(got["on"]["reference"], "ü".repeat(255));
    assert_balance_is_sum(&api, &c).await;
}

#[tokio::test]
async fn the_same_id_repeats_and_other_content_is_refused() {
    let server = Server::start().await;
    let api = server.admin();
    let c = uuid();
    let id = uuid();
    let body = topdesk_dto(
        &c,
        Some(&id),
        240,
        "2026-03-01T12:00:00Z",
        Some("invoice 9"),
    );
    let first = topdesk_create(&api, &body).await;
    // The same content spelt otherwise: another key order, another time zone, another
    // host in the links.
    let respelt = json!({
        "on": {"reference": "invoice 9", "type": "EXTERNAL_SYSTEM"},
        "modificationDate": "2026-03-01T13:00:00+01:00",
        "amountOfMinutes": 240,
        "_links": {
            "self": {"href": format!("http://other.example/balance-mutations/{id}")},
            "for": {"href": format!("urn:uuid:{c}")}
        }
    });
    let again = topdesk_post(&api, &respelt).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.header("location"), Some(first.as_str()));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    // Other content under the same id is refused, and nothing changes.
    for change in [
        json!({"amountOfMinutes": 241}),
        json!({"modificationDate": "2026-03-01T12:00:01Z"}),
        json!({"on": {"type": "EXTERNAL_SYSTEM", "reference": "invoice 10"}}),
        json!({"_links": {"self": {"href": first.clone()}, "for": {"href": for_href(&uuid())}}}),
    ] {
        let mut other = body.clone();
        for (k, v) in change.as_object().unwrap() {
            other[k] = v.clone();
        }
        text_error(&topdesk_post(&api, &other).await, 400, "_links.self.href");
    }
    let got = hal_ok(topdesk_follow(&api, &first).await, 200);
    assert_eq!(got["amountOfMinutes"], 240);
    assert_eq!(hal_ok(topdesk_list(&api, &[]).await, 200)["total"], 1);

    // Many clients repeating one new id at once record it once.
    let id = uuid();
    let body = topdesk_dto(&c, Some(&id), 15, "2026-03-02T12:00:00Z", None);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (api, body) = (api.clone(), body.clone());
        tasks.push(tokio::spawn(async move { topdesk_post(&api, &body).await }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(last_segment(r.header("location").unwrap()), id);
    }
    assert_eq!(hal_ok(topdesk_list(&api, &[]).await, 200)["total"], 2);
    assert_eq!(assert_balance_is_sum(&api, &c).await, 255);

    // An id taken by a mutation made through the native API is refused too.
    let native = api
        .post(
            &format!("/v1/wallets/{c}/mutations"),
            &json!({"kind": "top_up", "amount": 1}),
        )
        .await
        .ok(201);
    let taken = str_of(&native, "id");
    let r = topdesk_post(&api, &topdesk_dto(&c, Some(taken), 5, "2026-03-03", None)).await;
    text_error(&r, 400, "taken");
}

#[tokio::test]
async fn ticket_time_from_the_native_api_shows_here() {
    let server = Server::start().await;
    let api = server.admin();
    let c = uuid();
    topdesk_create(
        &api,
        &topdesk_dto(&c, None, 120, "2026-05-01T08:00:00Z", Some("bundle")),
    )
    .await;
    let incident = format!("https://acme.topdesk.net/tas/api/incidents/id/{}", uuid());
    for (kind, text, minutes) in [
        ("INCIDENT", "I 2605 017", 45),
        ("SIMPLE_CHANGE", "C 2605 003", 30),
        ("CHANGE_ACTIVITY", "CA 2605 011", 90),
    ] {
        api.post(
            &format!("/v1/wallets/{c}/mutations"),
            &json!({"kind": "debit", "amount": minutes, "occurred_at": "2026-05-02T09:00:00Z",
                "reference": {"type": kind, "text": text, "link": incident}}),
        )
        .await
        .ok(201);
    }
    // Another wallet of the same customer stays out of this API.
    api.create_wallet(&c, "c-eur", "EUR", 2).await;
    api.top_up("c-eur", 10_000).await;

    let items = customer_mutations(&api, &c).await;
    assert_eq!(items.len(), 4, "{items:?}");
    assert_eq!(
        items[1]["on"],
        json!({"type": "INCIDENT", "reference": "I 2605 017", "referenceLink": incident})
    );
    assert_eq!(items[1]["amountOfMinutes"], -45);
    assert_eq!(items[2]["on"]["type"], "SIMPLE_CHANGE");
    assert_eq!(items[3]["on"]["type"], "CHANGE_ACTIVITY");
    // Ticket time may take the balance below zero.
    assert_eq!(assert_balance_is_sum(&api, &c).await, -45);
    let page = hal_ok(
        topdesk_list(&api, &[("query", "on.type==INCIDENT")]).await,
        200,
    );
    assert_eq!(page["total"], 1);

    // A customer and minutes wallet made through the native API (no TOPdesk link) work
    // the same; its href is a URN of its id until a TOPdesk post names it, which gives it
    // the href that post addressed it by.
    let n = uuid();
    api.create_customer(&n).await;
    api.post(
        &format!("/v1/customers/{n}/wallets"),
        &json!({"id": n, "unit": "MIN", "unlimited_overdraft": true}),
    )
    .await
    .ok(201);
    api.post(
        &format!("/v1/wallets/{n}/mutations"),
        &json!({"kind": "debit", "amount": 10, "reference": {"type": "INCIDENT", "text": "I 1"}}),
    )
    .await
    .ok(201);
    let debit = hal_ok(
        topdesk_list(&api, &[("query", &format!("_links.for.id=={n}"))]).await,
        200,
    );
    assert_eq!(
        debit["_embedded"]["item"][0]["_links"]["for"]["href"],
        format!("urn:uuid:{n}")
    );
    topdesk_create(&api, &topdesk_dto(&n, None, 60, "2026-05-03", None)).await;
    let acc = hal_ok(account(&api, &n).await, 200);
    assert_eq!(acc["balance"], 50);
    assert_eq!(acc["_links"]["of"]["href"], for_href(&n));
    // A customer whose wallet of that id counts something else is refused.
    let e = uuid();
    api.create_customer(&e).await;
    api.create_wallet(&e, &e, "EUR", 2).await;
    let r = topdesk_post(&api, &topdesk_dto(&e, None, 60, "2026-05-03", None)).await;
    text_error(&r, 400, "not minutes");
}

#[tokio::test]
async fn the_service_user_is_per_tenant_and_needs_admin() {
    let server = Server::start().await;
    let api = server.admin();
    let path = format!("{TOPDESK_ROOT}/service-user");
    let exists = |api: Api| {
        let path = path.clone();
        async move { api.send(Method::HEAD, &path, &[], None).await.status }
    };
    assert_eq!(exists(api.clone()).await, 404);
    let r = api.send(Method::POST, &path, &[], None).await;
    assert_eq!((r.status, r.text.as_str()), (201, ""));
    assert_eq!(exists(api.clone()).await, 204);
    let r = api.send(Method::POST, &path, &[], None).await;
    assert_eq!(r.status, 200, "a second POST resets: {}", r.text);
    let r = api.post(&path, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = api
        .send(Method::POST, &path, &[], Some(b"please".to_vec()))
        .await;
    text_error(&r, 400, "empty");

    let (_, writer) = api.create_key("desk", &["read", "write"], None).await;
    text_error(
        &writer.send(Method::POST, &path, &[], None).await,
        403,
        "admin",
    );
    assert_eq!(exists(writer.clone()).await, 204);
    text_error(&api.get(&path).await, 405, "GET");

    let (_, other) = api.create_tenant("second-desk").await;
    assert_eq!(
        exists(other.clone()).await,
        404,
        "tenants have their own service user"
    );
    assert_eq!(other.send(Method::POST, &path, &[], None).await.status, 201);
    assert_eq!(exists(server.anonymous()).await, 401);
}

#[tokio::test]
async fn basic_auth_as_topdesk_clients_send_it() {
    let server = Server::start().await;
    let api = server.admin();
    let (key, bearer) = api
        .create_key("jane-operator", &["read", "write"], None)
        .await;
    let secret = str_of(&key, "secret").to_owned();
    let basic = api.with_auth(Auth::basic("jane-operator", &secret));
    let c = uuid();
    let loc = topdesk_create(&basic, &topdesk_dto(&c, None, 30, "2026-06-01", None)).await;
    hal_ok(topdesk_follow(&basic, &loc).await, 200);
    hal_ok(topdesk_follow(&bearer, &loc).await, 200);

    let wrong_name = api.with_auth(Auth::basic("john-operator", &secret));
    for client in [
        wrong_name,
        server.anonymous(),
        api.with_auth(Auth::basic("jane-operator", "nope")),
    ] {
        let r = topdesk_follow(&client, &loc).await;
        text_error(&r, 401, "credentials");
        assert!(r.header_all("www-authenticate").contains("Basic"), "{r:?}");
        let r = topdesk_post(&client, &topdesk_dto(&c, None, 30, "2026-06-01", None)).await;
        assert_eq!(r.status, 401);
    }
    let (_, reader) = api.create_key("reports", &["read"], None).await;
    text_error(
        &topdesk_post(&reader, &topdesk_dto(&c, None, 30, "2026-06-01", None)).await,
        403,
        "write",
    );
    hal_ok(topdesk_list(&reader, &[]).await, 200);
    assert_eq!(hal_ok(topdesk_list(&api, &[]).await, 200)["total"], 1);
}

#[tokio::test]
async fn tenants_and_restricted_keys_see_only_their_own() {
    let server = Server::start().await;
    let api = server.admin();
    let (_, other) = api.create_tenant("other-desk").await;
    let c = uuid();
    let id = uuid();
    let loc = topdesk_create(&api, &topdesk_dto(&c, Some(&id), 100, "2026-07-01", None)).await;

    text_error(
        &topdesk_follow(&other, &loc).await,
        404,
        "no balance mutation",
    );
    text_error(
        &account(&other, &c).await,
        404,
        "no prepaid services account",
    );
    assert_eq!(hal_ok(topdesk_list(&other, &[]).await, 200)["total"], 0);
    // The other tenant's customer of the same UUID is its own.
    topdesk_create(&other, &topdesk_dto(&c, None, 7, "2026-07-01", None)).await;
    assert_eq!(hal_ok(account(&other, &c).await, 200)["balance"], 7);
    assert_eq!(hal_ok(account(&api, &c).await, 200)["balance"], 100);
    // Mutation ids are each tenant's own: the other tenant's client may choose the same
    // id, which neither fails for it nor tells it the id exists here.
    let theirs = topdesk_post(&other, &topdesk_dto(&c, Some(&id), 30, "2026-07-01", None)).await;
    assert_eq!(theirs.status, 201, "{}", theirs.text);
    assert_eq!(
        hal_ok(topdesk_follow(&other, &loc).await, 200)["amountOfMinutes"],
        30
    );
    assert_eq!(
        hal_ok(topdesk_follow(&api, &loc).await, 200)["amountOfMinutes"],
        100
    );
    assert_eq!(hal_ok(account(&other, &c).await, 200)["balance"], 37);
    assert_eq!(hal_ok(topdesk_list(&api, &[]).await, 200)["total"], 1);

    // A key restricted to one customer.
    let d = uuid();
    let d_loc = topdesk_create(&api, &topdesk_dto(&d, None, 50, "2026-07-02", None)).await;
    let (_, only_d) = api.create_key("d-only", &["read", "write"], Some(&d)).await;
    let page = hal_ok(topdesk_list(&only_d, &[]).await, 200);
    assert_eq!(page["total"], 1);
    assert_eq!(page["_links"]["item"][0]["href"], d_loc);
    let page = hal_ok(
        topdesk_list(&only_d, &[("query", &format!("_links.for.id=={c}"))]).await,
        200,
    );
    assert_eq!(page["total"], 0);
    text_error(
        &topdesk_follow(&only_d, &loc).await,
        404,
        "no balance mutation",
    );
    text_error(
        &account(&only_d, &c).await,
        404,
        "no prepaid services account",
    );
    hal_ok(account(&only_d, &d).await, 200);
    text_error(
        &topdesk_post(&only_d, &topdesk_dto(&c, None, 1, "2026-07-03", None)).await,
        403,
        "_links.for.href",
    );
    topdesk_create(&only_d, &topdesk_dto(&d, None, 1, "2026-07-03", None)).await;
    assert_eq!(hal_ok(account(&api, &d).await, 200)["balance"], 51);
}

#[tokio::test]
async fn paths_and_methods_answer_plain_text() {
    let server = Server::start().await;
    let api = server.admin();
    text_error(&mutation(&api, "not-a-uuid").await, 400, "id");
    text_error(&mutation(&api, &uuid()).await, 404, "no balance mutation");
    text_error(
        &api.get(&format!("{TOPDESK_ROOT}/nothing-here")).await,
        404,
        "no such resource",
    );
    let r = api
        .send(
            Method::DELETE,
            &format!("{TOPDESK_ROOT}/balance-mutations/{}", uuid()),
            &[],
            None,
        )
        .await;
    text_error(&r, 405, "DELETE");
    let r = api
        .send(
            Method::PUT,
            &format!("{TOPDESK_ROOT}/balance-mutations"),
            &[],
            None,
        )
        .await;
    text_error(&r, 405, "PUT");
    // The native API keeps its own error shape.
    api.get("/v1/wallets/none")
        .await
        .problem(404, "wallet_not_found");
}

#[tokio::test]
async fn hrefs_follow_the_proxy_in_front() {
    let server = Server::start().await;
    let api = server.admin();
    let customer = uuid();
    let id = uuid();
    topdesk_create(
        &api,
        &topdesk_dto(&customer, Some(&id), 60, "2026-05-01", None),
    )
    .await;
    // nginx's default rewrites `Host` to the upstream's and says where the client
    // went in `X-Forwarded-Host`; RFC 7239's `Forwarded` says it too.
    for headers in [
        vec![
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "desk.example.com"),
        ],
        vec![(
            "forwarded",
            "for=192.0.2.60;proto=https;host=desk.example.com",
        )],
    ] {
        let r = api
            .send(
                Method::GET,
                &format!("{TOPDESK_ROOT}/balance-mutations/{id}"),
                &headers,
                None,
            )
            .await;
        let v = hal_ok(r, 200);
        let want = format!("https://desk.example.com{TOPDESK_ROOT}/balance-mutations/{id}");
        assert_eq!(v["_links"]["self"]["href"], want, "{headers:?}");
    }
    let r = api
        .send(
            Method::POST,
            &format!("{TOPDESK_ROOT}/balance-mutations"),
            &[
                ("content-type", "application/hal+json"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "desk.example.com"),
            ],
            Some(
                topdesk_dto(&customer, None, 5, "2026-05-02", None)
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let location = r.header("location").unwrap();
    assert!(
        location.starts_with(&format!(
            "https://desk.example.com{TOPDESK_ROOT}/balance-mutations/"
        )),
        "{location}"
    );
}

#[tokio::test]
async fn hal_clients_links_and_walks_work() {
    let server = Server::start().await;
    let api = server.admin();
    let customer = uuid();
    // Link objects may carry the members draft-kelly-json-hal §5 gives them.
    let mut dto = topdesk_dto(&customer, None, 60, "2026-05-03T10:00:00Z", None);
    dto["_links"]["for"]["title"] = json!("Branch Amsterdam");
    dto["_links"]["for"]["type"] = json!("application/json");
    dto["_links"]["for"]["templated"] = json!(false);
    let location = topdesk_create(&api, &dto).await;
    dto["_links"]["for"]["colour"] = json!("red");
    text_error(&topdesk_post(&api, &dto).await, 400, "colour");

    // A mutation links to its account, and the account back to the customer.
    let m = hal_ok(mutation(&api, last_segment(&location)).await, 200);
    let account_href = m["_links"]["account"]["href"].as_str().unwrap();
    assert_eq!(
        account_href,
        format!(
            "{}/prepaid-services-accounts/{customer}",
            topdesk_base(&api)
        )
    );
    let acc = hal_ok(account(&api, &customer).await, 200);
    assert_eq!(acc["_links"]["self"]["href"], account_href);

    // The latest top-up is the one latest by `modificationDate`, not the last posted.
    let later = uuid();
    topdesk_create(
        &api,
        &topdesk_dto(&customer, Some(&later), 30, "2026-06-01", None),
    )
    .await;
    topdesk_create(&api, &topdesk_dto(&customer, None, 10, "2026-05-04", None)).await;
    let acc = hal_ok(account(&api, &customer).await, 200);
    assert_eq!(
        acc["_links"]["latestTopUp"]["href"],
        format!("{}/balance-mutations/{later}", topdesk_base(&api))
    );

    // The base path answers in the dialect's own plain text, not a problem.
    for path in [TOPDESK_ROOT.to_owned(), format!("{TOPDESK_ROOT}/")] {
        let r = api.get(&path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert!(
            r.content_type().starts_with("text/plain"),
            "{path}: {}",
            r.content_type()
        );
    }
}

#[tokio::test]
async fn a_customers_link_comes_from_its_first_topdesk_post_or_the_native_api() {
    let server = Server::start().await;
    let api = server.admin();
    // Made natively without a link: the native API can give it one.
    let c = uuid();
    api.create_customer(&c).await;
    let href = format!("https://acme.topdesk.net/tas/api/branches/id/{c}");
    let v = api
        .patch(&format!("/v1/customers/{c}"), &json!({"link": href}))
        .await
        .ok(200);
    assert_eq!(v["link"], href);
    topdesk_create(&api, &topdesk_dto(&c, None, 60, "2026-05-03", None)).await;
    let acc = hal_ok(account(&api, &c).await, 200);
    assert_eq!(acc["_links"]["of"]["href"], href);
    // A link is kept: a later post that names the customer otherwise changes nothing.
    let mut other = topdesk_dto(&c, None, 1, "2026-05-04", None);
    other["_links"]["for"]["href"] = json!(format!("urn:uuid:{c}"));
    topdesk_create(&api, &other).await;
    let acc = hal_ok(account(&api, &c).await, 200);
    assert_eq!(acc["_links"]["of"]["href"], href);
    assert_eq!(
        api.get(&format!("/v1/customers/{c}")).await.ok(200)["link"],
        href
    );
}
