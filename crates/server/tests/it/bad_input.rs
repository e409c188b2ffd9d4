//! Bad input, data-driven: every malformed, mistyped, unknown, missing, out-of-range or
//! oversized request is answered with a 4xx problem naming the right code, never a 5xx,
//! and values exactly at each documented limit are accepted.

use crate::common;

use common::*;
use prepaid_ledger::REFERENCE_LEN_MAX;
use reqwest::Method;
use serde_json::{Value, json};

/// What a case expects.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Success with this status.
    Ok(u16),
    /// A problem with one of these statuses and one of these codes.
    Problem(&'static [u16], &'static [&'static str]),
}

const INVALID: Expect = Expect::Problem(&[400], &["invalid_request"]);
const UNKNOWN_FIELD: Expect = Expect::Problem(&[400], &["unknown_field"]);
/// A bad id in a path: refused as invalid, or simply not found.
const BAD_PATH_ID: Expect = Expect::Problem(
    &[400, 404],
    &[
        "invalid_request",
        "not_found",
        "customer_not_found",
        "wallet_not_found",
        "mutation_not_found",
        "hold_not_found",
    ],
);
const NO_ROUTE: Expect = Expect::Problem(&[404], &["not_found"]);
const NO_METHOD: Expect = Expect::Problem(&[405], &["method_not_allowed"]);
const MEDIA_TYPE: Expect = Expect::Problem(&[415], &["unsupported_media_type"]);

struct Case {
    name: String,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    expect: Expect,
    /// Send with `Expect: 100-continue` (see [`Api::post_expect_continue`]).
    expect_continue: bool,
}

/// Builds the table; `json`/`raw` take the body as text so that malformed JSON and
/// numbers beyond `i64` can be written as they travel.
#[derive(Default)]
struct Table(Vec<Case>);

impl Table {
    fn raw(
        &mut self,
        name: &str,
        method: Method,
        path: &str,
        ct: Option<&str>,
        body: Option<Vec<u8>>,
        expect: Expect,
    ) {
        let mut headers = Vec::new();
        if let Some(ct) = ct {
            headers.push(("content-type", ct.to_owned()));
        }
        self.0.push(Case {
            name: name.to_owned(),
            method,
            path: path.to_owned(),
            headers,
            body,
            expect,
            expect_continue: false,
        });
    }
    fn post(&mut self, name: &str, path: &str, body: &str, expect: Expect) {
        self.raw(
            name,
            Method::POST,
            path,
            Some("application/json"),
            Some(body.as_bytes().to_vec()),
            expect,
        );
    }
    fn post_json(&mut self, name: &str, path: &str, body: Value, expect: Expect) {
        self.post(name, path, &body.to_string(), expect);
    }
    fn patch_json(&mut self, name: &str, path: &str, body: Value, expect: Expect) {
        let body = body.to_string().into_bytes();
        self.raw(
            name,
            Method::PATCH,
            path,
            Some("application/json"),
            Some(body),
            expect,
        );
    }
    fn get(&mut self, name: &str, path: &str, expect: Expect) {
        self.raw(name, Method::GET, path, None, None, expect);
    }
}

const MUTATIONS: &str = "/v1/wallets/w/mutations";

async fn setup(api: &Api) -> String {
    api.funded_wallet("c", "w", 1_000).await;
    api.create_wallet("c", "w-max", "EUR", 2).await;
    api.create_wallet("c", "w-adj", "EUR", 2).await;
    api.create_wallet("c", "w-batch", "EUR", 2).await;
    api.create_wallet("c", "w-min", "MIN", 0).await;
    let h = api
        .post("/v1/wallets/w/holds", &json!({"amount": 10}))
        .await
        .ok(201);
    str_of(&h, "id").to_owned()
}

fn table(hold: &str) -> Table {
    let mut t = Table::default();
    let commit = format!("/v1/holds/{hold}/commit");
    let release = format!("/v1/holds/{hold}/release");
    let id_max = "i".repeat(ID_LEN_MAX);
    let id_over = "i".repeat(ID_LEN_MAX + 1);

    // Malformed JSON and bodies of the wrong shape.
    t.post(
        "truncated json",
        MUTATIONS,
        r#"{"kind":"top_up","amount":"#,
        INVALID,
    );
    t.post("empty json body", MUTATIONS, "", INVALID);
    t.post("json array body", MUTATIONS, "[]", INVALID);
    t.post("json string body", MUTATIONS, r#""top_up""#, INVALID);
    t.post("json null body", MUTATIONS, "null", INVALID);
    t.post(
        "trailing garbage",
        MUTATIONS,
        r#"{"kind":"top_up","amount":1} x"#,
        INVALID,
    );
    t.post("truncated customer", "/v1/customers", r#"{"id":"#, INVALID);

    // Wrong types.
    t.post(
        "amount as string",
        MUTATIONS,
        r#"{"kind":"top_up","amount":"10"}"#,
        INVALID,
    );
    t.post(
        "amount fractional",
        MUTATIONS,
        r#"{"kind":"top_up","amount":1.5}"#,
        INVALID,
    );
    t.post(
        "amount in exponent form",
        MUTATIONS,
        r#"{"kind":"top_up","amount":1e3}"#,
        INVALID,
    );
    t.post(
        "amount boolean",
        MUTATIONS,
        r#"{"kind":"top_up","amount":true}"#,
        INVALID,
    );
    t.post(
        "amount null",
        MUTATIONS,
        r#"{"kind":"top_up","amount":null}"#,
        INVALID,
    );
    t.post(
        "kind number",
        MUTATIONS,
        r#"{"kind":1,"amount":1}"#,
        INVALID,
    );
    t.post(
        "kind unknown",
        MUTATIONS,
        r#"{"kind":"gift","amount":1}"#,
        INVALID,
    );
    t.post(
        "kind transfer_in",
        MUTATIONS,
        r#"{"kind":"transfer_in","amount":1}"#,
        INVALID,
    );
    t.post(
        "kind hold_commit",
        MUTATIONS,
        r#"{"kind":"hold_commit","amount":1}"#,
        INVALID,
    );
    t.post(
        "kind expiry",
        MUTATIONS,
        r#"{"kind":"expiry","amount":1}"#,
        INVALID,
    );
    t.post(
        "kind wrong case",
        MUTATIONS,
        r#"{"kind":"TOP_UP","amount":1}"#,
        INVALID,
    );
    t.post(
        "customer id number",
        "/v1/customers",
        r#"{"id":5}"#,
        INVALID,
    );
    t.post(
        "customer name array",
        "/v1/customers",
        r#"{"name":["a"]}"#,
        INVALID,
    );
    let wallets = "/v1/customers/c/wallets";
    t.post(
        "scale string",
        wallets,
        r#"{"unit":"EUR","scale":"2"}"#,
        INVALID,
    );
    t.post(
        "scale negative",
        wallets,
        r#"{"unit":"EUR","scale":-1}"#,
        INVALID,
    );
    // The largest scale is 18.
    t.post("scale 19", wallets, r#"{"unit":"EUR","scale":19}"#, INVALID);
    t.post("unit empty", wallets, r#"{"unit":""}"#, INVALID);
    t.post("unit with space", wallets, r#"{"unit":"E U"}"#, INVALID);
    // The longest unit code is 16 characters.
    t.post(
        "unit 17 chars",
        wallets,
        r#"{"unit":"UUUUUUUUUUUUUUUUU"}"#,
        INVALID,
    );
    t.post(
        "floor positive",
        wallets,
        r#"{"unit":"EUR","floor":5}"#,
        INVALID,
    );
    t.post(
        "floor string",
        wallets,
        r#"{"unit":"EUR","floor":"0"}"#,
        INVALID,
    );
    t.post(
        "unlimited_overdraft string",
        wallets,
        r#"{"unit":"EUR","unlimited_overdraft":"yes"}"#,
        INVALID,
    );
    t.post(
        "valid_until not a time",
        wallets,
        r#"{"unit":"EUR","valid_until":"never"}"#,
        INVALID,
    );
    t.post(
        "valid_from number",
        wallets,
        r#"{"unit":"EUR","valid_from":5}"#,
        INVALID,
    );
    t.patch_json(
        "status unknown",
        "/v1/wallets/w",
        json!({"status": "frozen"}),
        INVALID,
    );
    t.patch_json(
        "status number",
        "/v1/wallets/w",
        json!({"status": 1}),
        INVALID,
    );
    t.post_json(
        "scopes string",
        "/v1/api-keys",
        json!({"name": "k1", "scopes": "read"}),
        INVALID,
    );
    t.post_json(
        "scopes unknown",
        "/v1/api-keys",
        json!({"name": "k2", "scopes": ["fly"]}),
        INVALID,
    );
    t.post(
        "hold amount string",
        "/v1/wallets/w/holds",
        r#"{"amount":"5"}"#,
        INVALID,
    );
    t.post(
        "hold expires_at not a time",
        "/v1/wallets/w/holds",
        r#"{"amount":5,"expires_at":"soon"}"#,
        INVALID,
    );
    t.post(
        "commit amount string",
        &commit,
        r#"{"amount":"1"}"#,
        INVALID,
    );
    t.post(
        "commit amount negative",
        &commit,
        r#"{"amount":-1}"#,
        // A bad value, or a commit the hold cannot cover: either way refused.
        Expect::Problem(&[400, 422], &["invalid_request", "commit_exceeds_hold"]),
    );
    t.post(
        "batch mutations object",
        "/v1/batch",
        r#"{"mutations":{}}"#,
        INVALID,
    );

    // Unknown fields.
    t.post(
        "unknown field in mutation",
        MUTATIONS,
        r#"{"kind":"top_up","amount":1,"color":"red"}"#,
        UNKNOWN_FIELD,
    );
    t.post(
        "unknown field in customer",
        "/v1/customers",
        r#"{"id":"u1","email":"x"}"#,
        UNKNOWN_FIELD,
    );
    t.post(
        "unknown field in wallet",
        wallets,
        r#"{"unit":"EUR","currency":"EUR"}"#,
        UNKNOWN_FIELD,
    );
    t.patch_json(
        "unknown field in patch",
        "/v1/wallets/w",
        json!({"status": "active", "name": "x"}),
        UNKNOWN_FIELD,
    );
    t.post(
        "unknown field in hold",
        "/v1/wallets/w/holds",
        r#"{"amount":1,"x":1}"#,
        UNKNOWN_FIELD,
    );
    t.post(
        "unknown field in commit",
        &commit,
        r#"{"x":1}"#,
        UNKNOWN_FIELD,
    );
    t.post(
        "unknown field in release",
        &release,
        r#"{"x":1}"#,
        UNKNOWN_FIELD,
    );
    t.post_json(
        "unknown field in transfer",
        "/v1/transfers",
        json!({"from_wallet_id": "w", "to_wallet_id": "w-adj", "amount": 1, "x": 1}),
        UNKNOWN_FIELD,
    );
    t.post(
        "unknown field in batch",
        "/v1/batch",
        r#"{"mutations":[],"x":1}"#,
        UNKNOWN_FIELD,
    );
    t.post_json(
        "unknown field in api key",
        "/v1/api-keys",
        json!({"name": "k3", "scopes": ["read"], "x": 1}),
        UNKNOWN_FIELD,
    );
    t.post_json(
        "unknown field in tenant",
        "/v1/tenants",
        json!({"id": "t1", "x": 1}),
        UNKNOWN_FIELD,
    );

    // Missing fields.
    t.post(
        "mutation without kind",
        MUTATIONS,
        r#"{"amount":1}"#,
        INVALID,
    );
    t.post(
        "mutation without amount",
        MUTATIONS,
        r#"{"kind":"top_up"}"#,
        INVALID,
    );
    t.post(
        "wallet without unit",
        wallets,
        r#"{"id":"w-nounit"}"#,
        INVALID,
    );
    t.post_json(
        "transfer without to",
        "/v1/transfers",
        json!({"from_wallet_id": "w", "amount": 1}),
        INVALID,
    );
    t.post_json(
        "transfer without amount",
        "/v1/transfers",
        json!({"from_wallet_id": "w", "to_wallet_id": "w-adj"}),
        INVALID,
    );
    t.post("hold without amount", "/v1/wallets/w/holds", "{}", INVALID);
    t.post_json(
        "api key without name",
        "/v1/api-keys",
        json!({"scopes": ["read"]}),
        INVALID,
    );
    t.post_json(
        "api key without scopes",
        "/v1/api-keys",
        json!({"name": "k4"}),
        INVALID,
    );
    t.post(
        "tenant with a bad id",
        "/v1/tenants",
        r#"{"id": "a/b"}"#,
        INVALID,
    );
    t.post("batch without mutations", "/v1/batch", "{}", INVALID);
    t.patch_json("patch without status", "/v1/wallets/w", json!({}), INVALID);

    // Amounts.
    for (kind, amount) in [
        ("top_up", 0i64),
        ("top_up", -5),
        ("debit", 0),
        ("debit", -5),
        ("adjustment", 0),
    ] {
        t.post_json(
            &format!("{kind} of {amount}"),
            MUTATIONS,
            json!({"kind": kind, "amount": amount}),
            INVALID,
        );
    }
    t.post_json(
        "top_up of AMOUNT_MAX",
        "/v1/wallets/w-max/mutations",
        json!({"kind": "top_up", "amount": AMOUNT_MAX}),
        Expect::Ok(201),
    );
    t.post_json(
        "top_up of AMOUNT_MAX+1",
        MUTATIONS,
        json!({"kind": "top_up", "amount": AMOUNT_MAX + 1}),
        INVALID,
    );
    t.post_json(
        "debit of AMOUNT_MAX+1",
        MUTATIONS,
        json!({"kind": "debit", "amount": AMOUNT_MAX + 1}),
        INVALID,
    );
    t.post_json(
        "top_up of i64::MAX",
        MUTATIONS,
        json!({"kind": "top_up", "amount": i64::MAX}),
        INVALID,
    );
    t.post(
        "top_up beyond i64",
        MUTATIONS,
        r#"{"kind":"top_up","amount":9223372036854775808}"#,
        INVALID,
    );
    t.post(
        "top_up beyond u64",
        MUTATIONS,
        r#"{"kind":"top_up","amount":18446744073709551616}"#,
        INVALID,
    );
    t.post(
        "top_up of 1e30",
        MUTATIONS,
        r#"{"kind":"top_up","amount":1000000000000000000000000000000}"#,
        INVALID,
    );
    t.post(
        "adjustment below i64",
        MUTATIONS,
        r#"{"kind":"adjustment","amount":-9223372036854775809}"#,
        INVALID,
    );
    t.post_json(
        "adjustment of -AMOUNT_MAX",
        "/v1/wallets/w-adj/mutations",
        json!({"kind": "adjustment", "amount": -AMOUNT_MAX}),
        Expect::Ok(201),
    );
    t.post_json(
        "adjustment of -(AMOUNT_MAX+1)",
        MUTATIONS,
        json!({"kind": "adjustment", "amount": -AMOUNT_MAX - 1}),
        INVALID,
    );
    t.post_json(
        "hold of 0",
        "/v1/wallets/w/holds",
        json!({"amount": 0}),
        INVALID,
    );
    t.post_json(
        "hold of -1",
        "/v1/wallets/w/holds",
        json!({"amount": -1}),
        INVALID,
    );
    t.post_json(
        "hold of AMOUNT_MAX+1",
        "/v1/wallets/w/holds",
        json!({"amount": AMOUNT_MAX + 1}),
        INVALID,
    );
    for amount in [0, -1, AMOUNT_MAX + 1] {
        t.post_json(
            &format!("transfer of {amount}"),
            "/v1/transfers",
            json!({"from_wallet_id": "w", "to_wallet_id": "w-adj", "amount": amount}),
            INVALID,
        );
    }

    // Ids chosen by clients.
    t.post_json(
        "customer id at ID_LEN_MAX",
        "/v1/customers",
        json!({"id": id_max}),
        Expect::Ok(201),
    );
    t.post_json(
        "customer id over ID_LEN_MAX",
        "/v1/customers",
        json!({"id": id_over}),
        INVALID,
    );
    for bad in [
        "", "a/b", "a b", "a?b", "a#b", "a%b", "a\\b", "é", "a\tb", "a\u{7f}",
    ] {
        t.post_json(
            &format!("customer id {bad:?}"),
            "/v1/customers",
            json!({"id": bad}),
            INVALID,
        );
    }
    t.post_json(
        "wallet id at ID_LEN_MAX",
        wallets,
        json!({"id": id_max, "unit": "EUR"}),
        Expect::Ok(201),
    );
    t.post_json(
        "wallet id over ID_LEN_MAX",
        wallets,
        json!({"id": id_over, "unit": "EUR"}),
        INVALID,
    );
    t.post_json(
        "wallet id with slash",
        wallets,
        json!({"id": "w/x", "unit": "EUR"}),
        INVALID,
    );
    t.post_json(
        "tenant id at ID_LEN_MAX",
        "/v1/tenants",
        json!({"id": id_max}),
        Expect::Ok(201),
    );
    t.post_json(
        "tenant id over ID_LEN_MAX",
        "/v1/tenants",
        json!({"id": id_over}),
        INVALID,
    );
    t.post_json(
        "tenant id with slash",
        "/v1/tenants",
        json!({"id": "t/x"}),
        INVALID,
    );
    t.post_json(
        "key name at ID_LEN_MAX",
        "/v1/api-keys",
        json!({"name": id_max, "scopes": ["read"]}),
        Expect::Ok(201),
    );
    t.post_json(
        "key name over ID_LEN_MAX",
        "/v1/api-keys",
        json!({"name": id_over, "scopes": ["read"]}),
        INVALID,
    );
    t.post_json(
        "key name with slash",
        "/v1/api-keys",
        json!({"name": "k/x", "scopes": ["read"]}),
        INVALID,
    );
    t.post_json(
        "customer name at NAME_LEN_MAX",
        "/v1/customers",
        json!({"id": "named", "name": "n".repeat(NAME_LEN_MAX)}),
        Expect::Ok(201),
    );
    t.post_json(
        "customer name over NAME_LEN_MAX",
        "/v1/customers",
        json!({"id": "named2", "name": "n".repeat(NAME_LEN_MAX + 1)}),
        INVALID,
    );
    t.post_json(
        "customer name with a control character",
        "/v1/customers",
        json!({"id": "named3", "name": "a\u{1}b"}),
        INVALID,
    );
    t.get(
        "path customer id over ID_LEN_MAX",
        &format!("/v1/customers/{id_over}"),
        BAD_PATH_ID,
    );
    t.get(
        "path customer id with encoded slash",
        "/v1/customers/a%2Fb",
        BAD_PATH_ID,
    );
    t.get(
        "path wallet id with encoded space",
        "/v1/wallets/a%20b",
        BAD_PATH_ID,
    );
    t.get(
        "path mutation id not a uuid",
        "/v1/mutations/not-a-uuid",
        BAD_PATH_ID,
    );
    t.get(
        "path hold id not a uuid",
        "/v1/holds/not-a-uuid",
        BAD_PATH_ID,
    );
    t.post(
        "commit of a hold id not a uuid",
        "/v1/holds/not-a-uuid/commit",
        "{}",
        BAD_PATH_ID,
    );

    let text_max = "r".repeat(REFERENCE_LEN_MAX);
    let text_over = "r".repeat(REFERENCE_LEN_MAX + 1);
    t.post_json(
        "reference text at REFERENCE_LEN_MAX",
        MUTATIONS,
        json!({"kind": "top_up", "amount": 1, "reference": {"type": "payment", "text": text_max}}),
        Expect::Ok(201),
    );
    t.post_json(
        "reference text over REFERENCE_LEN_MAX",
        MUTATIONS,
        json!({"kind": "top_up", "amount": 1, "reference": {"type": "payment", "text": text_over}}),
        INVALID,
    );
    t.post_json(
        "reference with an unknown member",
        MUTATIONS,
        json!({"kind": "top_up", "amount": 1, "reference": {"type": "payment", "colour": "red"}}),
        UNKNOWN_FIELD,
    );

    // Times.
    for bad in [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-25T10:00:00",
        "2026-11-25",
        "2026-11-25T25:00:00Z",
        "",
    ] {
        t.post_json(
            &format!("occurred_at {bad:?}"),
            MUTATIONS,
            json!({"kind": "top_up", "amount": 1, "occurred_at": bad}),
            INVALID,
        );
    }
    t.post_json(
        "occurred_at number",
        MUTATIONS,
        json!({"kind": "top_up", "amount": 1, "occurred_at": 12345}),
        INVALID,
    );

    // Content types.
    let top_up = br#"{"kind":"top_up","amount":1}"#.to_vec();
    t.raw(
        "text/plain body",
        Method::POST,
        MUTATIONS,
        Some("text/plain"),
        Some(top_up.clone()),
        MEDIA_TYPE,
    );
    t.raw(
        "no content type",
        Method::POST,
        MUTATIONS,
        None,
        Some(top_up.clone()),
        MEDIA_TYPE,
    );
    t.raw(
        "xml content type",
        Method::POST,
        MUTATIONS,
        Some("application/xml"),
        Some(top_up.clone()),
        MEDIA_TYPE,
    );
    t.raw(
        "form content type",
        Method::POST,
        "/v1/customers",
        Some("application/x-www-form-urlencoded"),
        Some(b"id=x".to_vec()),
        MEDIA_TYPE,
    );
    t.raw(
        "json with charset",
        Method::POST,
        MUTATIONS,
        Some("application/json; charset=utf-8"),
        Some(top_up),
        Expect::Ok(201),
    );

    // Body size: exactly the limit is read (and refused for its content), one more
    // byte is refused unread.
    t.raw(
        "body of exactly 4 MiB",
        Method::POST,
        "/v1/customers",
        Some("application/json"),
        Some(customer_body_of(BODY_BYTES_MAX)),
        INVALID,
    );
    t.raw(
        "body over 4 MiB",
        Method::POST,
        "/v1/customers",
        Some("application/json"),
        Some(customer_body_of(BODY_BYTES_MAX + 1)),
        Expect::Problem(&[413], &["body_too_large"]),
    );
    // The server refuses this on its Content-Length; waiting for `100 Continue` makes
    // sure its answer is read rather than lost to a body it never reads.
    t.0.last_mut().expect("the case just added").expect_continue = true;

    // Batch size.
    t.post(
        "batch of BATCH_ITEMS_MAX",
        "/v1/batch",
        &batch_body(BATCH_ITEMS_MAX),
        Expect::Ok(200),
    );
    t.post(
        "batch of BATCH_ITEMS_MAX+1",
        "/v1/batch",
        &batch_body(BATCH_ITEMS_MAX + 1),
        Expect::Problem(&[400], &["batch_too_large"]),
    );

    // Page sizes and cursors.
    for list in [
        "/v1/customers",
        "/v1/wallets",
        "/v1/wallets/w/mutations",
        "/v1/customers/c/wallets",
    ] {
        t.get(
            &format!("{list} limit=1000"),
            &format!("{list}?limit={PAGE_LIMIT_MAX}"),
            Expect::Ok(200),
        );
        t.get(
            &format!("{list} limit=1001"),
            &format!("{list}?limit={}", PAGE_LIMIT_MAX + 1),
            INVALID,
        );
        t.get(
            &format!("{list} limit=-1"),
            &format!("{list}?limit=-1"),
            INVALID,
        );
        t.get(
            &format!("{list} limit=abc"),
            &format!("{list}?limit=abc"),
            INVALID,
        );
    }
    t.get(
        "mutation cursor garbage",
        "/v1/wallets/w/mutations?after=not-a-cursor",
        INVALID,
    );

    // Idempotency keys.
    let long_key = "k".repeat(IDEMPOTENCY_KEY_LEN_MAX + 1);
    t.0.push(Case {
        name: "idempotency key over the limit".into(),
        method: Method::POST,
        path: MUTATIONS.into(),
        headers: vec![
            ("content-type", "application/json".into()),
            ("idempotency-key", long_key),
        ],
        body: Some(br#"{"kind":"top_up","amount":1}"#.to_vec()),
        expect: INVALID,
        expect_continue: false,
    });

    // Routes and methods.
    t.get("unknown route under /v1", "/v1/nothing", NO_ROUTE);
    t.get("unknown route", "/nothing", NO_ROUTE);
    t.get("bare /v1", "/v1", NO_ROUTE);
    t.post(
        "unknown sub-resource",
        "/v1/wallets/w/nothing",
        "{}",
        NO_ROUTE,
    );
    for (method, path) in [
        (Method::DELETE, "/v1/customers"),
        (Method::DELETE, "/v1/customers/c"),
        (Method::PUT, "/v1/wallets/w"),
        (Method::DELETE, "/v1/wallets/w"),
        (Method::POST, "/v1/wallets"),
        (Method::GET, "/v1/batch"),
        (Method::GET, "/v1/transfers"),
        (Method::GET, "/v1/tenants"),
        (Method::GET, "/v1/api-keys"),
        (Method::DELETE, "/v1/wallets/w/mutations"),
    ] {
        t.raw(
            &format!("{method} {path}"),
            method.clone(),
            path,
            None,
            None,
            NO_METHOD,
        );
    }
    t.raw(
        "GET of a commit",
        Method::GET,
        &commit,
        None,
        None,
        NO_METHOD,
    );
    t.raw(
        "POST to a mutation",
        Method::POST,
        "/v1/mutations/00000000-0000-0000-0000-000000000000",
        Some("application/json"),
        Some(b"{}".to_vec()),
        NO_METHOD,
    );
    t
}

/// A customer creation whose body is exactly `len` bytes (its name far too long).
fn customer_body_of(len: usize) -> Vec<u8> {
    let mut body = br#"{"name":""#.to_vec();
    body.resize(len - 2, b'n');
    body.extend_from_slice(br#""}"#);
    assert_eq!(body.len(), len);
    body
}

/// A batch of `n` top-ups of 1 on `w-batch`.
fn batch_body(n: usize) -> String {
    let items: Vec<Value> = (0..n)
        .map(|_| json!({"wallet_id": "w-batch", "kind": "top_up", "amount": 1}))
        .collect();
    json!({"mutations": items}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_4xx_problem_never_a_5xx() {
    let server = Server::start().await;
    let api = server.admin();
    let hold = setup(&api).await;
    let customers_before = api.list_all("/v1/customers", 100).await.len();

    let mut failures = Vec::new();
    let table = table(&hold);
    let cases = table.0.len();
    for case in table.0 {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sent = if case.expect_continue {
            let ct = headers
                .iter()
                .find(|(k, _)| *k == "content-type")
                .map_or("", |(_, v)| *v);
            let body = case.body.as_deref().unwrap_or_default();
            Ok(api.post_expect_continue(&case.path, ct, body).await)
        } else {
            api.try_send(case.method.clone(), &case.path, &headers, case.body)
                .await
        };
        let r = match sent {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!(
                    "{}: {} {}: no answer: {e}",
                    case.name, case.method, case.path
                ));
                continue;
            }
        };
        let outcome = match case.expect {
            Expect::Ok(status) if r.status == status => Ok(()),
            Expect::Ok(status) => Err(format!(
                "expected {status}, got {} {}",
                r.status,
                short(&r.text)
            )),
            Expect::Problem(statuses, codes) => r.check_problem(statuses, codes),
        };
        if let Err(why) = outcome {
            failures.push(format!(
                "{}: {} {}: {why}",
                case.name, case.method, case.path
            ));
        } else if r.status >= 400 && !(400..500).contains(&r.status) {
            failures.push(format!("{}: answered {}", case.name, r.status));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Only the accepted cases changed anything.
    assert_eq!(
        api.balance("w").await,
        1_002,
        "a top-up with a charset and one with the longest reference were accepted"
    );
    assert_eq!(int(&api.wallet("w").await, "held"), 10);
    assert_eq!(api.balance("w-max").await, AMOUNT_MAX);
    assert_eq!(api.balance("w-adj").await, -AMOUNT_MAX);
    assert_eq!(api.balance("w-batch").await, BATCH_ITEMS_MAX as i64);
    assert_eq!(api.balance("w-min").await, 0);
    assert_balance_is_sum(&api, "w").await;
    let customers = api.list_all("/v1/customers", 100).await.len();
    assert_eq!(
        customers,
        customers_before + 2,
        "the id at the limit and the long name"
    );
    assert_eq!(
        api.get("/healthz").await.status,
        200,
        "the server is still up"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn times_accept_any_offset_and_answer_utc_micros() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("c", "w", 0).await;
    let m = api
        .post(
            MUTATIONS,
            &json!({"kind": "top_up", "amount": 1, "occurred_at": "2026-11-25T10:00:00+02:00"}),
        )
        .await
        .ok(201);
    assert_eq!(m["occurred_at"], "2026-11-25T08:00:00.000000Z");
    let m = api
        .post(
            MUTATIONS,
            &json!({"kind": "top_up", "amount": 1, "occurred_at": "2026-11-25T10:00:00.123456789Z"}),
        )
        .await
        .ok(201);
    let at = str_of(&m, "occurred_at");
    assert!(at.starts_with("2026-11-25T10:00:00.123456"), "{at}");
    assert_time(&m, "occurred_at");
    let w = api
        .post(
            "/v1/customers/c/wallets",
            &json!({"id": "v", "unit": "EUR", "valid_from": "2020-01-01T00:00:00-05:30"}),
        )
        .await
        .ok(201);
    assert_eq!(w["valid_from"], "2020-01-01T05:30:00.000000Z");
}

fn short(text: &str) -> String {
    text.chars().take(300).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_request_detail_names_the_field() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("c", "w", 100).await;
    let cases = [
        (
            MUTATIONS,
            json!({"kind": "top_up", "amount": "10"}),
            "amount",
        ),
        (MUTATIONS, json!({"kind": "top_up"}), "amount"),
        (MUTATIONS, json!({"amount": 1}), "kind"),
        (MUTATIONS, json!({"kind": "top_up", "amount": 0}), "amount"),
        (
            MUTATIONS,
            json!({"kind": "top_up", "amount": 1, "colour": 1}),
            "colour",
        ),
        (
            MUTATIONS,
            json!({"kind": "top_up", "amount": 1, "occurred_at": "x"}),
            "occurred_at",
        ),
        (
            "/v1/customers/c/wallets",
            json!({"unit": "EUR", "scale": 30}),
            "scale",
        ),
        ("/v1/customers/c/wallets", json!({"unit": "E U"}), "unit"),
        ("/v1/customers", json!({"id": "a/b"}), "id"),
        (
            "/v1/transfers",
            json!({"from_wallet_id": "w", "amount": 1}),
            "to_wallet_id",
        ),
        (
            "/v1/wallets/w/holds",
            json!({"amount": 1, "expires_at": "soon"}),
            "expires_at",
        ),
    ];
    for (path, body, field) in cases {
        let r = api.post(path, &body).await;
        let p = r.problem_any(400, &["invalid_request", "unknown_field"]);
        let detail = p["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(field),
            "POST {path} {body}: detail {detail:?} must name {field}"
        );
    }
    let r = api.get("/v1/customers?limit=1001").await;
    let detail = r.problem(400, "invalid_request")["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(
        detail.contains("limit"),
        "detail {detail:?} must name limit"
    );
    assert_eq!(api.balance("w").await, 100);
}
