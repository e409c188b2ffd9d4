//! Connection limits: a connection that sends no request head within the header-read
//! timeout is closed, so is an idle keep-alive connection after the keep-alive timeout,
//! and a connection beyond the cap is closed unanswered while the others are served.
//!
//! These tests say only that a connection gets closed, never how fast: each wait is
//! bounded by [`CLOSE_WAIT_MAX`], far beyond the configured timeouts, only so that a
//! broken server fails the test instead of hanging it.

use crate::common;

use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The longest a test waits for the server to close a connection.
const CLOSE_WAIT_MAX: Duration = Duration::from_secs(30);

const REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n";

async fn connect(server: &Server) -> TcpStream {
    let addr = server.base().strip_prefix("http://").expect("http base");
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection (or resets it); returns what came.
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(CLOSE_WAIT_MAX, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    got
}

/// Sends one keep-alive request and reads its whole answer (a small JSON body).
async fn healthz(tcp: &mut TcpStream) -> String {
    tcp.write_all(REQUEST).await.expect("write");
    let got = String::from_utf8_lossy(&until_closed_or_answer(tcp).await).into_owned();
    assert!(got.contains("\"ok\""), "no answer: {got:?}");
    got
}

fn limits_env(header_ms: u64, keep_alive_ms: u64, max: usize) -> Vec<(&'static str, String)> {
    vec![
        ("PREPAID_HEADER_READ_TIMEOUT_MS", header_ms.to_string()),
        ("PREPAID_KEEP_ALIVE_TIMEOUT_MS", keep_alive_ms.to_string()),
        ("PREPAID_MAX_CONNECTIONS", max.to_string()),
    ]
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed() {
    let server = Server::start_with_env(&limits_env(300, 300, 64)).await;
    // Silent from the start.
    let mut silent = connect(&server).await;
    assert!(until_closed(&mut silent).await.is_empty());
    // Half a head, never finished.
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: te")
        .await
        .expect("write");
    assert!(until_closed(&mut slow).await.is_empty());
    // Answered, then idle.
    let mut idle = connect(&server).await;
    assert!(healthz(&mut idle).await.starts_with("HTTP/1.1 200"));
    assert!(until_closed(&mut idle).await.is_empty());
    // Meanwhile the server answers others.
    server.anonymous().get("/healthz").await.ok(200);
}

#[tokio::test]
async fn a_connection_beyond_the_cap_is_closed_unanswered() {
    const MAX: usize = 4;
    let server = Server::start_with_env(&limits_env(60_000, 60_000, MAX)).await;
    // MAX connections, each answered once, so each holds its place.
    let mut open = Vec::new();
    for _ in 0..MAX {
        let mut tcp = connect(&server).await;
        assert!(healthz(&mut tcp).await.starts_with("HTTP/1.1 200"));
        open.push(tcp);
    }
    let mut beyond = connect(&server).await;
    let _ = beyond.write_all(REQUEST).await;
    assert!(until_closed(&mut beyond).await.is_empty());
    // The open ones are still served.
    assert!(healthz(&mut open[0]).await.starts_with("HTTP/1.1 200"));
    // Once one closes, its place is free again (when the server has seen it close).
    drop(open.pop());
    let mut answered = false;
    for _ in 0..100 {
        let mut tcp = connect(&server).await;
        if tcp.write_all(REQUEST).await.is_ok()
            && String::from_utf8_lossy(&until_closed_or_answer(&mut tcp).await).contains("\"ok\"")
        {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "a freed place is never given to a new connection");
}

/// What comes on `tcp` until the answer to [`REQUEST`] is complete or the server closes.
async fn until_closed_or_answer(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(CLOSE_WAIT_MAX, async {
        while !String::from_utf8_lossy(&got).contains("\"ok\"") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    got
}
