//! The service endpoints: health, readiness, metrics, the OpenAPI document and the
//! interactive docs.

use crate::common;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness() {
    let server = Server::start().await;
    let anon = server.anonymous();
    let health = anon.get("/healthz").await;
    assert_eq!(health.status, 200, "{}", health.text);
    let ready = anon.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_name_prepaid_series() {
    let server = Server::start().await;
    let api = server.admin();
    // Some work, so that the commit and request series exist.
    api.funded_wallet("c", "w", 100).await;
    api.mutate("w", "debit", 1_000)
        .await
        .problem(422, "insufficient_funds");

    let m = server.anonymous().get("/metrics").await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert!(
        m.content_type().starts_with("text/plain"),
        "Prometheus text format, got {:?}",
        m.content_type()
    );
    assert!(
        m.text.contains("prepaid_commits_total"),
        "the engine's commit counter is exported:\n{}",
        m.text
    );
    assert!(
        m.text.contains("prepaid_http_requests_total"),
        "requests are counted:\n{}",
        m.text
    );
    let prepaid_series = m
        .text
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with("prepaid_"))
        .count();
    assert!(prepaid_series > 1, "several prepaid_ series:\n{}", m.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_and_docs_page() {
    let server = Server::start().await;
    let anon = server.anonymous();

    let doc = anon.get("/v1/openapi.json").await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    let doc: Value = serde_json::from_str(&doc.text).expect("the OpenAPI document is JSON");
    let version = doc["openapi"].as_str().expect("an openapi version member");
    assert!(version.starts_with('3'), "OpenAPI 3.x, got {version}");
    let paths = doc["paths"].as_object().expect("a paths object");
    let names: Vec<&String> = paths.keys().collect();
    for path in ["/v1/customers", "/v1/batch", "/v1/transfers"] {
        assert!(
            paths.contains_key(path),
            "{path} missing from paths {names:?}"
        );
    }
    // The parameter's name is the server's choice; the shape of the path is not.
    assert!(
        names
            .iter()
            .any(|p| p.starts_with("/v1/wallets/{") && p.ends_with("}/mutations")),
        "the wallet mutations path is missing from {names:?}"
    );

    let page = anon.get("/docs").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.content_type().starts_with("text/html"),
        "/docs is HTML, got {:?}",
        page.content_type()
    );
}
