//! Every answer of the TM Forum mount, checked against the response schema of its
//! operation in TM Forum's official TMF654 v4 OpenAPI file (`tests/data/`): the
//! bodies, not just the status codes. Each schema is validated with the file's
//! `definitions` beside it, so its `#/definitions/...` references resolve.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const TMF: &str = "/tmf-api/prepayBalanceManagement/v4";
const SPEC: &str = include_str!("../data/TMF654-PrepayBalance-v4.0.0.swagger.json");

struct Spec(Value);

impl Spec {
    fn load() -> Spec {
        Spec(serde_json::from_str(SPEC).expect("the OpenAPI file is JSON"))
    }

    /// Checks `r` against the response schema of `method path` (the spec's path
    /// template, e.g. `/topupBalance/{id}`) for its status.
    #[track_caller]
    fn check(&self, method: &str, path: &str, r: &Resp) {
        let op = &self.0["paths"][path][method];
        assert!(op.is_object(), "no operation {method} {path} in the spec");
        let status = r.status.to_string();
        // Only the statuses the spec lists for the operation: a refusal of a
        // well-formed request keeps its code and goes out as one of them.
        let response = &op["responses"][&status];
        assert!(
            response.is_object(),
            "{method} {path}: the spec has no {status} answer: {}",
            r.text
        );
        let Some(schema) = response.get("schema") else {
            assert!(r.text.is_empty(), "{method} {path} {status} has a body");
            return;
        };
        self.validate(
            schema,
            &r.json,
            &format!("{method} {path} {status}"),
            &r.text,
        );
    }

    /// Checks `value` against `schema` of the spec.
    #[track_caller]
    fn validate(&self, schema: &Value, value: &Value, what: &str, text: &str) {
        let mut root = schema.clone();
        root["definitions"] = self.0["definitions"].clone();
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .expect("the spec's schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{what}: {errors:#?}\n{text}");
    }
}

#[tokio::test]
async fn every_operation_answers_as_the_spec_says() {
    let spec = Spec::load();
    let server = Server::start().await;
    let api = server.admin();
    let tmf = |p: &str| format!("{TMF}{p}");

    let b = api
        .post(
            &tmf("/bucket"),
            &json!({"id": "b1", "name": "Main", "partyAccount": {"id": "acct-1", "name": "Ann"},
                "remainingValue": {"amount": "100", "units": "EUR"}}),
        )
        .await;
    assert_eq!(b.status, 201, "{}", b.text);
    // POST /bucket is prepaid's own; its answer is still a Bucket.
    spec.validate(
        &json!({"$ref": "#/definitions/Bucket"}),
        &b.json,
        "POST /bucket",
        &b.text,
    );
    api.post(
        &tmf("/bucket"),
        &json!({"id": "b2", "partyAccount": {"id": "acct-1"},
            "remainingValue": {"units": "EUR"}}),
    )
    .await
    .ok(201);

    spec.check("get", "/bucket", &api.get(&tmf("/bucket")).await);
    spec.check("get", "/bucket/{id}", &api.get(&tmf("/bucket/b1")).await);
    spec.check("get", "/bucket/{id}", &api.get(&tmf("/bucket/none")).await);

    // Top-ups, one-time and recurring.
    let t = api
        .post(
            &tmf("/topupBalance"),
            &json!({"amount": {"amount": 5.25, "units": "EUR"}, "bucket": {"id": "b1"},
                "partyAccount": {"id": "acct-1"}, "usageType": "monetary",
                "channel": {"id": "web", "name": "Web"}, "description": "voucher",
                "requestor": {"id": "u1", "@referredType": "Individual"}}),
        )
        .await;
    spec.check("post", "/topupBalance", &t);
    let tid = t.json["id"].as_str().unwrap().to_owned();
    let rec = api
        .post(
            &tmf("/topupBalance"),
            &json!({"amount": {"amount": "1", "units": "EUR"}, "bucket": {"id": "b1"},
                "partyAccount": {"id": "acct-1"}, "usageType": "monetary",
                "isAutoTopup": true, "recurringPeriod": "monthly", "numberOfPeriods": 3}),
        )
        .await;
    spec.check("post", "/topupBalance", &rec);
    spec.check(
        "get",
        "/topupBalance",
        &api.get(&tmf("/topupBalance")).await,
    );
    spec.check(
        "get",
        "/topupBalance/{id}",
        &api.get(&tmf(&format!("/topupBalance/{tid}"))).await,
    );
    spec.check(
        "patch",
        "/topupBalance/{id}",
        &api.patch(
            &tmf(&format!("/topupBalance/{tid}")),
            &json!({"status": "completed", "description": "voucher 42"}),
        )
        .await,
    );
    spec.check(
        "patch",
        "/topupBalance/{id}",
        &api.patch(
            &tmf(&format!("/topupBalance/{tid}")),
            &json!({"status": "cancelled"}),
        )
        .await,
    );
    spec.check(
        "delete",
        "/topupBalance/{id}",
        &api.send(
            Method::DELETE,
            &tmf(&format!("/topupBalance/{tid}")),
            &[],
            None,
        )
        .await,
    );
    spec.check(
        "post",
        "/topupBalance",
        &api.post(
            &tmf("/topupBalance"),
            &json!({"amount": {"amount": "0.001", "units": "EUR"}, "bucket": {"id": "b1"}}),
        )
        .await,
    );

    // Adjustments.
    let a = api
        .post(
            &tmf("/adjustBalance"),
            &json!({"amount": {"amount": -0.25, "units": "EUR"}, "bucket": {"id": "b1"},
                "usageType": "monetary", "adjustType": "oneTime", "reason": "fix"}),
        )
        .await;
    spec.check("post", "/adjustBalance", &a);
    let aid = a.json["id"].as_str().unwrap().to_owned();
    spec.check(
        "get",
        "/adjustBalance",
        &api.get(&tmf("/adjustBalance")).await,
    );
    spec.check(
        "get",
        "/adjustBalance/{id}",
        &api.get(&tmf(&format!("/adjustBalance/{aid}"))).await,
    );
    spec.check(
        "patch",
        "/adjustBalance/{id}",
        &api.patch(
            &tmf(&format!("/adjustBalance/{aid}")),
            &json!({"status": "completed", "description": "fixed"}),
        )
        .await,
    );
    spec.check(
        "delete",
        "/adjustBalance/{id}",
        &api.send(
            Method::DELETE,
            &tmf(&format!("/adjustBalance/{aid}")),
            &[],
            None,
        )
        .await,
    );

    // Transfers: one as the spec's create schema has it, one minimal.
    let t = api
        .post(
            &tmf("/transferBalance"),
            &json!({"amount": {"amount": "2", "units": "EUR"}, "bucket": {"id": "b1"},
                "receiverBucket": {"id": "b2"}, "usageType": "monetary",
                "receiverBucketUsageType": "monetary", "reason": "gift",
                "channel": {"id": "app"}, "logicalResource": [{"id": "msisdn-1"}],
                "receiverLogicalResource": {"id": "msisdn-2"}, "costOwner": "originator"}),
        )
        .await;
    spec.check("post", "/transferBalance", &t);
    let xid = t.json["id"].as_str().unwrap().to_owned();
    spec.check(
        "post",
        "/transferBalance",
        &api.post(
            &tmf("/transferBalance"),
            &json!({"amount": {"amount": "1", "units": "EUR"}, "bucket": {"id": "b1"},
                "receiverBucket": {"id": "b2"}}),
        )
        .await,
    );
    spec.check(
        "post",
        "/transferBalance",
        &api.post(
            &tmf("/transferBalance"),
            &json!({"amount": {"amount": "1000", "units": "EUR"}, "bucket": {"id": "b1"},
                "receiverBucket": {"id": "b2"}}),
        )
        .await,
    );
    spec.check(
        "get",
        "/transferBalance",
        &api.get(&tmf("/transferBalance")).await,
    );
    spec.check(
        "get",
        "/transferBalance/{id}",
        &api.get(&tmf(&format!("/transferBalance/{xid}"))).await,
    );
    spec.check(
        "patch",
        "/transferBalance/{id}",
        &api.patch(
            &tmf(&format!("/transferBalance/{xid}")),
            &json!({"status": "completed", "description": "for you"}),
        )
        .await,
    );
    spec.check(
        "delete",
        "/transferBalance/{id}",
        &api.send(
            Method::DELETE,
            &tmf(&format!("/transferBalance/{xid}")),
            &[],
            None,
        )
        .await,
    );

    // Reservations.
    let reserve = json!({"amount": {"amount": "10", "units": "EUR"}, "bucket": {"id": "b1"},
        "partyAccount": {"id": "acct-1"}, "usageType": "monetary",
        "validFor": {"endDateTime": "2999-01-01T00:00:00Z"}});
    let r = api.post(&tmf("/reserveBalance"), &reserve).await;
    spec.check("post", "/reserveBalance", &r);
    let rid = r.json["id"].as_str().unwrap().to_owned();
    spec.check(
        "get",
        "/reserveBalance",
        &api.get(&tmf("/reserveBalance")).await,
    );
    spec.check(
        "get",
        "/reserveBalance/{id}",
        &api.get(&tmf(&format!("/reserveBalance/{rid}"))).await,
    );
    spec.check(
        "patch",
        "/reserveBalance/{id}",
        &api.patch(
            &tmf(&format!("/reserveBalance/{rid}")),
            &json!({"status": "completed", "reason": "used"}),
        )
        .await,
    );
    spec.check(
        "patch",
        "/reserveBalance/{id}",
        &api.patch(
            &tmf(&format!("/reserveBalance/{rid}")),
            &json!({"status": "cancelled", "reason": "late"}),
        )
        .await,
    );
    let r2 = api.post(&tmf("/reserveBalance"), &reserve).await.ok(201);
    spec.check(
        "delete",
        "/reserveBalance/{id}",
        &api.send(
            Method::DELETE,
            &tmf(&format!("/reserveBalance/{}", r2["id"].as_str().unwrap())),
            &[],
            None,
        )
        .await,
    );

    // Sums and history.
    let sums = api.get(&tmf("/accumulatedBalance")).await;
    spec.check("get", "/accumulatedBalance", &sums);
    let sid = sums.json[0]["id"].as_str().unwrap().to_owned();
    spec.check(
        "get",
        "/accumulatedBalance/{id}",
        &api.get(&tmf(&format!("/accumulatedBalance/{sid}"))).await,
    );
    spec.check(
        "get",
        "/accumulatedBalance/{id}",
        &api.get(&tmf("/accumulatedBalance/nobody:EUR")).await,
    );
    let h = api.get(&tmf("/balanceActionHistory")).await;
    spec.check("get", "/balanceActionHistory", &h);
    let hid = h.json[0]["id"].as_str().unwrap().to_owned();
    spec.check(
        "get",
        "/balanceActionHistory/{id}",
        &api.get(&tmf(&format!("/balanceActionHistory/{hid}"))).await,
    );

    // Errors of every kind are `Error`s.
    spec.check(
        "get",
        "/topupBalance",
        &api.get(&tmf("/topupBalance?limit=0")).await,
    );
    spec.check(
        "get",
        "/bucket",
        &server.anonymous().get(&tmf("/bucket")).await,
    );
}
