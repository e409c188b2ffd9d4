//! Everything around the API: health and readiness, Prometheus metrics, the browsable
//! reference, the 404/405 fallbacks, and the middleware (timeouts, panics, request
//! metrics) every route runs through.

use crate::SharedState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use prepaid_edge::problem::Problem;
use std::any::Any;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tracing::Instrument as _;

/// Latency buckets (seconds) of the request and commit histograms.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of the commit batch size histogram.
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];

/// The process-wide Prometheus recorder, installed on first use. `None` when another
/// recorder was installed first (metrics are then not served).
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("prepaid_commit_batch_size".into()),
                        BATCH_SIZE_BUCKETS,
                    )
                });
            match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "no Prometheus recorder; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

pub async fn healthz() -> Response {
    prepaid_edge::json_response(StatusCode::OK, &HealthOut { status: "ok" }, false)
}

pub async fn readyz(State(state): State<SharedState>) -> Response {
    match state.store.ping().await {
        Ok(()) => {
            prepaid_edge::json_response(StatusCode::OK, &HealthOut { status: "ready" }, false)
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness probe failed");
            Problem::unavailable("the store cannot be reached").into_response()
        }
    }
}

pub async fn metrics() -> Response {
    let body = metrics_handle()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The page of `/docs`: Scalar's reference, with its script served by this server and
/// every feature that would call out to a hosted service (fonts, telemetry, the AI
/// agent, MCP, the developer tools) turned off, so the page works offline.
const DOCS_HTML: &str = r#"<!doctype html>
<html>
<head>
  <title>prepaid API reference</title>
  <meta charset="utf-8"/>
  <meta name="viewport" content="width=device-width, initial-scale=1"/>
</head>
<body>
<script id="api-reference" type="application/json" data-configuration='{"withDefaultFonts": false, "hideClientButton": true, "showDeveloperTools": "never", "telemetry": false, "agent": {"disabled": true}, "mcp": {"disabled": true}}'>
$spec
</script>
<script src="/docs/scalar.js"></script>
</body>
</html>
"#;

/// The Scalar bundle (see `assets/scalar/README.md`), gzip-compressed.
static SCALAR_JS_GZ: &[u8] = include_bytes!("../assets/scalar/standalone.js.gz");

/// The answer of `/healthz` and `/readyz`.
#[derive(serde::Serialize)]
pub struct HealthOut {
    pub status: &'static str,
}

/// The `/docs` page over `openapi`, the document the server assembles.
pub fn docs_router(openapi: utoipa::openapi::OpenApi) -> axum::Router<SharedState> {
    use utoipa_scalar::Servable as _;
    let scalar = utoipa_scalar::Scalar::with_url("/docs", openapi).custom_html(DOCS_HTML);
    axum::Router::from(scalar).route("/docs/scalar.js", axum::routing::get(scalar_js))
}

async fn scalar_js() -> Response {
    let mut response = SCALAR_JS_GZ.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}

pub use prepaid_edge::problem::{method_not_allowed, not_found};

/// Turns a panic into a bare 500 problem; the panic message goes to the log only.
pub fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let message = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "a request handler panicked");
    Problem::internal().into_response()
}

/// The route template of a matched request (`/v1/wallets/{id}`), carried on the
/// response so that the outer metrics layer can label by route.
#[derive(Clone)]
struct RouteLabel(String);

/// Runs inside routing (as a route layer), where the matched path is known.
pub async fn tag_route(req: Request, next: Next) -> Response {
    let label = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| RouteLabel(m.as_str().to_owned()));
    let mut response = next.run(req).await;
    if let Some(label) = label {
        response.extensions_mut().insert(label);
    }
    response
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// How a path is made fit for the log: the dialects that take secrets in paths (a
/// TouchTopUp password, say) give theirs when the server is assembled.
pub type Redact = fn(&str) -> std::borrow::Cow<'_, str>;

/// What the edge middleware needs: the request timeout, and how paths are redacted.
#[derive(Clone, Copy)]
pub struct Edge {
    pub limit: Duration,
    pub redact: Redact,
}

/// The outermost middleware of every request, in one layer to keep the hot path short:
/// a tracing span, the request timeout (answered 503), and the request counter and
/// latency histogram by method, route and status.
pub async fn edge(State(edge): State<Edge>, req: Request, next: Next) -> Response {
    let limit = edge.limit;
    let method = method_label(req.method());
    // Secret path parameters never reach the log.
    let path = (edge.redact)(req.uri().path());
    let span = tracing::debug_span!("request", method, path = %path);
    let started = Instant::now();
    let response = match tokio::time::timeout(limit, next.run(req).instrument(span.clone())).await {
        Ok(response) => response,
        Err(_) => Problem::unavailable(format!(
            "the request took longer than {} ms; a mutation may still be applied, so retry \
             with the same Idempotency-Key",
            limit.as_millis()
        ))
        .into_response(),
    };
    let elapsed = started.elapsed();
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map_or_else(|| String::from("unmatched"), |r| r.0.clone());
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(
            status,
            route,
            elapsed_us = elapsed.as_micros() as u64,
            "answered"
        );
    });
    metrics::counter!("prepaid_http_requests_total",
        "method" => method, "route" => route.clone(), "status" => status.to_string())
    .increment(1);
    metrics::histogram!("prepaid_http_request_duration_seconds",
        "method" => method, "route" => route)
    .record(elapsed.as_secs_f64());
    response
}
