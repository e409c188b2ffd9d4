//! Sessions: a signed cookie that names the API key a person signed in with.
//!
//! The cookie holds the SHA-256 of the key's secret (never the secret), the session's
//! expiry and a random nonce, signed with HMAC-SHA256 under the console's server key.
//! Each request looks the key up again by that digest (through the edge's key cache), so
//! a session never has more rights than its key has now. The server key is 32 random
//! bytes kept as a record of the operator tenant, made on first use by compare-and-set,
//! so every instance on one store signs and checks with the same key and sessions
//! survive a restart.
//!
//! The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/console`, `Secure` when the
//! client addressed the server over HTTPS, and lives [`SESSION_TTL_SECS`]. Signing out
//! clears it in the browser; a copy taken before stays valid until it expires (no
//! session is stored server-side).
//!
//! Every form carries the session's CSRF token, an HMAC of its nonce, which
//! [`crate::forms`] checks on each post beside `Origin` and `Sec-Fetch-Site`.

use crate::{ConsoleError, Keys};
use axum::extract::FromRequestParts;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Principal, Scope, authenticate_digest, grants};
use prepaid_ledger::{RecordKey, RecordKind, TenantId};
use sha2::Sha256;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "prepaid_console";
/// How long a session lasts from sign-in: 12 hours.
pub const SESSION_TTL_SECS: i64 = 12 * 60 * 60;
/// The longest session cookie value read, in bytes (a valid one is 179).
pub const COOKIE_LEN_MAX: usize = 256;

/// The record kind of the console's server key.
pub const SECRET_KIND: RecordKind = RecordKind::new("console.secret");
const SECRET_KEY: &str = "session";
const SECRET_BYTES: usize = 32;
const NONCE_BYTES: usize = 16;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn random<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// The console's server key, read from the store (or made there) on first use.
pub struct ServerKey([u8; SECRET_BYTES]);

impl ServerKey {
    /// The key of the store behind `state`: the operator tenant's `console.secret`
    /// record, made if absent. Two instances that race to make it both end up with the
    /// winner's.
    pub async fn load(state: &SharedState) -> Result<Self, ConsoleError> {
        let key = RecordKey::parse(SECRET_KEY).expect("the secret's record key is valid");
        let tenant: &TenantId = &state.operator;
        for _ in 0..3 {
            let found = state
                .store
                .record(tenant, SECRET_KIND, &key)
                .await
                .map_err(|e| ConsoleError::store(&e, "reading the console's key"))?;
            if let Some(record) = found {
                return unhex::<SECRET_BYTES>(&record.value)
                    .map(Self)
                    .ok_or_else(|| {
                        tracing::error!("the console's key record is not 64 hex digits");
                        ConsoleError::internal()
                    });
            }
            let fresh = random::<SECRET_BYTES>();
            let now = state.clock.now();
            let put = state
                .store
                .put_record(tenant, SECRET_KIND, &key, &hex(&fresh), None, now)
                .await
                .map_err(|e| ConsoleError::store(&e, "making the console's key"))?;
            if put.is_some() {
                return Ok(Self(fresh));
            }
        }
        tracing::error!("the console's key could not be read or made");
        Err(ConsoleError::internal())
    }

    fn mac(&self, label: &str, text: &str) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(text.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A new session's cookie value for the key whose secret hashes to `digest`.
    pub fn issue(&self, digest: &[u8; 32], now_secs: i64) -> String {
        let body = format!(
            "{}.{}.{}",
            hex(digest),
            now_secs + SESSION_TTL_SECS,
            hex(&random::<NONCE_BYTES>())
        );
        let mac = hex(&self.mac("session", &body));
        format!("{body}.{mac}")
    }

    /// The digest and nonce of a cookie value this key signed that has not expired.
    fn check(&self, value: &str, now_secs: i64) -> Option<([u8; 32], String)> {
        if value.len() > COOKIE_LEN_MAX {
            return None;
        }
        let (body, mac) = value.rsplit_once('.')?;
        let mac = unhex::<32>(mac)?;
        if !bool::from(self.mac("session", body).ct_eq(&mac)) {
            return None;
        }
        let mut parts = body.split('.');
        let digest = unhex::<32>(parts.next()?)?;
        let expires: i64 = parts.next()?.parse().ok()?;
        let nonce = parts.next()?;
        (expires > now_secs).then(|| (digest, nonce.to_owned()))
    }

    /// The CSRF token of the session with `nonce`.
    fn csrf(&self, nonce: &str) -> String {
        hex(&self.mac("csrf", nonce))
    }
}

/// The `Set-Cookie` value that opens a session.
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/console; Max-Age={SESSION_TTL_SECS}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends one.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The value of the session cookie among a request's `Cookie` headers.
fn cookie_value(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// A signed-in person: the key their session names, and the session's CSRF token.
pub struct Session {
    pub principal: Arc<Principal>,
    pub csrf: String,
}

impl Session {
    /// Whether the session's key grants `scope`.
    pub fn may(&self, scope: Scope) -> bool {
        grants(self.principal.scopes, scope)
    }

    /// Whether the session's key sees the whole tenant (not one customer).
    pub fn tenant_wide(&self) -> bool {
        self.principal.customer.is_none()
    }

    /// Whether the CSRF token a form sent is this session's.
    pub fn csrf_matches(&self, sent: &str) -> bool {
        bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

impl FromRequestParts<SharedState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let keys = parts
            .extensions
            .get::<Arc<Keys>>()
            .cloned()
            .ok_or_else(ConsoleError::internal)?;
        let server_key = keys.server_key(state).await?;
        let now_secs = state.clock.now().as_micros() / 1_000_000;
        let (digest, nonce) = cookie_value(parts)
            .and_then(|v| server_key.check(v, now_secs))
            .ok_or(ConsoleError::SignIn)?;
        let principal =
            authenticate_digest(state, digest)
                .await
                .map_err(|f| match f.status.as_u16() {
                    401 => ConsoleError::SignIn,
                    _ => ConsoleError::Failure(f),
                })?;
        Ok(Self {
            principal,
            csrf: server_key.csrf(&nonce),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_verify_until_they_expire() {
        let key = ServerKey([3; SECRET_BYTES]);
        let digest = [9u8; 32];
        let value = key.issue(&digest, 1000);
        assert!(value.len() <= COOKIE_LEN_MAX, "{}", value.len());
        let (got, nonce) = key.check(&value, 1000 + SESSION_TTL_SECS - 1).unwrap();
        assert_eq!(got, digest);
        assert_eq!(key.csrf(&nonce).len(), 64);
        assert!(key.check(&value, 1000 + SESSION_TTL_SECS).is_none());
        // Another server key, or a changed expiry, does not verify.
        assert!(ServerKey([4; SECRET_BYTES]).check(&value, 1000).is_none());
        let forged = value.replacen(&(1000 + SESSION_TTL_SECS).to_string(), "99999999999", 1);
        assert!(key.check(&forged, 1000).is_none());
    }

    #[test]
    fn cookie_length_is_bounded() {
        let key = ServerKey([3; SECRET_BYTES]);
        let long = "a".repeat(COOKIE_LEN_MAX + 1);
        assert!(key.check(&long, 0).is_none());
    }
}
