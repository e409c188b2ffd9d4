//! A lean HTTP/1.1 keep-alive client: one TCP connection, one request at a time.
//!
//! The load generator shares the CPU with the server on small machines, so it talks
//! hyper's connection API directly (no pool, no redirect or cookie logic) to spend as
//! little CPU per request as possible.

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// A whole body in one buffer; an empty one for requests without a body (hyper then
/// sends no `Content-Length` on a GET).
type Body = Full<Bytes>;

/// Where the server is and how to authenticate.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    host: HeaderValue,
    auth: HeaderValue,
}

impl Target {
    pub fn new(addr: SocketAddr, secret: &str) -> anyhow::Result<Self> {
        Ok(Self {
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            auth: HeaderValue::from_str(&format!("Bearer {secret}"))
                .context("secret is not a valid header value")?,
        })
    }

    /// The same credentials against another server (of the same database).
    pub fn at(&self, addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            auth: self.auth.clone(),
        })
    }
}

/// One keep-alive connection.
pub struct Conn {
    target: Target,
    sender: SendRequest<Body>,
}

/// A finished exchange.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    /// The answer as text for error messages.
    pub fn describe(&self) -> String {
        format!(
            "HTTP {}: {}",
            self.status.as_u16(),
            String::from_utf8_lossy(&self.body)
        )
    }
}

impl Conn {
    pub async fn open(target: &Target) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it;
            // either way the next request on it reports the error.
            let _ = connection.await;
        });
        Ok(Self {
            target: target.clone(),
            sender,
        })
    }

    /// Sends one request and reads the whole answer. A JSON `body` makes it a JSON
    /// request; `idempotency_key` sets the `Idempotency-Key` header.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.target.host.clone())
            .header(AUTHORIZATION, self.target.auth.clone());
        if let Some(key) = idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        let request = match body {
            Some(b) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(b))?,
            None => builder.body(Full::new(Bytes::new()))?,
        };
        self.sender.ready().await.context("connection closed")?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body })
    }

    /// Reopens the connection after a transport error.
    pub async fn reopen(&mut self) -> anyhow::Result<()> {
        *self = Self::open(&self.target).await?;
        Ok(())
    }
}

/// Sends a JSON request during setup and insists on `expected`.
pub async fn call(
    conn: &mut Conn,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    expected: StatusCode,
) -> anyhow::Result<serde_json::Value> {
    let body = body.map(|b| Bytes::from(b.to_string()));
    let answer = conn
        .send(method.clone(), path, body, None)
        .await
        .with_context(|| format!("{method} {path}"))?;
    if answer.status != expected {
        bail!(
            "{method} {path}: expected {expected}, got {}",
            answer.describe()
        );
    }
    if answer.body.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(&answer.body)
        .with_context(|| format!("{method} {path}: answer is not JSON"))
}

/// Opens `count` connections at once.
pub async fn open_many(target: &Target, count: usize) -> anyhow::Result<Vec<Conn>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..count {
        let target = target.clone();
        set.spawn(async move { Conn::open(&target).await });
    }
    let mut conns = Vec::with_capacity(count);
    while let Some(conn) = set.join_next().await {
        conns.push(conn??);
    }
    Ok(conns)
}
