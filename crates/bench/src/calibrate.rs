//! A canned-answer HTTP server inside the benchmark process, used to measure how many
//! requests per second the load generator can drive on this machine when the server
//! does (almost) no work. If prepaid's figures are far below this ceiling, the load
//! generator was not what limited them.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, body::Incoming};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;

/// A mutation-sized JSON answer, so the client parses as many bytes as it does against
/// prepaid.
const CANNED_MUTATION: &str = r#"{"id":"0190b5a2-6f4e-7c1a-9d3e-5b8f2a1c4d6e","wallet_id":"bench-w00000","customer_id":"bench-c000","unit":"EUR","scale":2,"kind":"debit","amount":-1,"balance_after":999999999999,"reference":{"type":null,"text":null,"link":null},"hold_id":null,"transfer_id":null,"counter_wallet_id":null,"occurred_at":"2026-01-01T00:00:00.000000Z","recorded_at":"2026-01-01T00:00:00.000000Z"}"#;

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the whole body, as a real server must before answering.
    let _ = request.into_body().collect().await;
    let mut response = Response::new(Full::new(Bytes::from_static(CANNED_MUTATION.as_bytes())));
    *response.status_mut() = StatusCode::CREATED;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Starts the canned server on a free loopback port; it runs until the process ends.
pub async fn start() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    });
    Ok(addr)
}
