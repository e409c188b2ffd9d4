//! Authentication and scopes.
//!
//! A caller presents `Authorization: Bearer <secret>` or HTTP Basic `<key name>:<secret>`.
//! The key is found by the SHA-256 of its secret, so no secret is ever stored or
//! compared in the clear; the digests and the Basic name are compared in constant time.
//! Keys are cached in memory after the first lookup, so the hot path never touches the
//! store to authenticate.

use crate::SharedState;
use crate::failure::Failure;
use crate::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use prepaid_ledger::{ApiKey, ApiKeyName, CustomerId, Scopes, TenantId};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The most keys the cache holds; past it the cache starts over.
pub const AUTH_CACHE_ENTRIES_MAX: usize = 10_000;
/// How long a cached key is trusted before it is looked up again.
pub const AUTH_CACHE_TTL_MS: u64 = 60_000;
/// The longest `Authorization` header accepted, in bytes.
pub const AUTHORIZATION_LEN_MAX: usize = 1024;

/// What a request may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// Whether `scopes` grant `scope`: admin implies write, write implies read.
pub fn grants(scopes: Scopes, scope: Scope) -> bool {
    match scope {
        Scope::Admin => scopes.admin,
        Scope::Write => scopes.admin || scopes.write,
        Scope::Read => scopes.admin || scopes.write || scopes.read,
    }
}

/// The authenticated key behind a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub key_name: ApiKeyName,
    pub scopes: Scopes,
    /// Set when the key sees and changes only this customer.
    pub customer: Option<CustomerId>,
}

impl Principal {
    /// Whether this key may see `customer`'s data.
    pub fn sees(&self, customer: &CustomerId) -> bool {
        self.customer.as_ref().is_none_or(|c| c == customer)
    }
}

struct Entry {
    secret_sha256: [u8; 32],
    principal: Arc<Principal>,
    fetched: Instant,
}

/// Hashes a SHA-256 digest by its first eight bytes: digests are already uniform, and
/// nobody can aim at a bucket without a preimage, so SipHash would only cost time.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
    }
}

/// Keys by the SHA-256 of their secret.
pub struct AuthCache {
    entries: RwLock<HashMap<[u8; 32], Entry, BuildHasherDefault<DigestHasher>>>,
    ttl: Duration,
}

impl Default for AuthCache {
    fn default() -> Self {
        Self {
            entries: RwLock::new(HashMap::default()),
            ttl: Duration::from_millis(AUTH_CACHE_TTL_MS),
        }
    }
}

impl AuthCache {
    fn get(&self, digest: &[u8; 32]) -> Option<Arc<Principal>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(digest)?;
        if entry.fetched.elapsed() > self.ttl {
            return None;
        }
        bool::from(entry.secret_sha256.ct_eq(digest)).then(|| entry.principal.clone())
    }

    /// Forgets the key whose secret hashes to `digest` (a revoked key): this instance
    /// looks it up again on its next use.
    pub fn forget(&self, digest: &[u8; 32]) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.remove(digest);
    }

    fn put(&self, key: &ApiKey) -> Arc<Principal> {
        let principal = Arc::new(Principal {
            tenant: key.tenant.clone(),
            key_name: key.name.clone(),
            scopes: key.scopes,
            customer: key.customer.clone(),
        });
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= AUTH_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(
            key.secret_sha256,
            Entry {
                secret_sha256: key.secret_sha256,
                principal: principal.clone(),
                fetched: Instant::now(),
            },
        );
        principal
    }
}

/// The SHA-256 of a key secret, as stored.
pub fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The random bytes of a generated key secret.
pub const SECRET_BYTES: usize = 32;

/// A new key secret: 32 random bytes, URL-safe base64, prefixed `pp_` (so that a
/// leaked secret is easy to recognise in a scan).
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "pp_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Credentials as presented.
enum Credentials<'a> {
    Bearer(&'a str),
    Basic { name: String, secret: String },
}

fn parse_authorization(value: &str) -> Result<Credentials<'_>, Failure> {
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(Failure::unauthorized("the Bearer credentials are empty"));
        }
        return Ok(Credentials::Bearer(rest));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| Failure::unauthorized("the Basic credentials are not base64"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| Failure::unauthorized("the Basic credentials are not UTF-8"))?;
        let Some((name, secret)) = decoded.split_once(':') else {
            return Err(Failure::unauthorized(
                "the Basic credentials must be <key name>:<secret>",
            ));
        };
        return Ok(Credentials::Basic {
            name: name.to_owned(),
            secret: secret.to_owned(),
        });
    }
    Err(Failure::unauthorized(
        "use Authorization: Bearer <secret> or Basic <key name>:<secret>",
    ))
}

/// The credentials of an `Authorization` header, refusing one over
/// [`AUTHORIZATION_LEN_MAX`] bytes.
fn credentials(value: &HeaderValue) -> Result<Credentials<'_>, Failure> {
    if value.len() > AUTHORIZATION_LEN_MAX {
        return Err(Failure::unauthorized(
            "the Authorization header is too long",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| Failure::unauthorized("the Authorization header is not ASCII"))?;
    parse_authorization(value)
}

/// Finds the key whose secret is `secret` (from any header a dialect reads it from),
/// without checking any scope.
pub async fn authenticate_secret(
    state: &SharedState,
    secret: &str,
) -> Result<Arc<Principal>, Failure> {
    authenticate_digest(state, secret_digest(secret)).await
}

/// Finds the key whose secret's SHA-256 is `digest`: for a session that keeps the
/// digest of the key it was opened with rather than the secret itself.
pub async fn authenticate_digest(
    state: &SharedState,
    digest: [u8; 32],
) -> Result<Arc<Principal>, Failure> {
    if let Some(p) = state.auth.get(&digest) {
        return Ok(p);
    }
    let key = state
        .store
        .api_key_by_hash(digest)
        .await
        .map_err(|e| crate::store_problem(&e, "looking up an API key"))?;
    match key {
        Some(key) if bool::from(key.secret_sha256.ct_eq(&digest)) => Ok(state.auth.put(&key)),
        _ => Err(Failure::unauthorized("unknown credentials")),
    }
}

/// Finds the key of the request's credentials (without checking any scope).
pub async fn authenticate(state: &SharedState, parts: &Parts) -> Result<Arc<Principal>, Failure> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Err(Failure::unauthorized("credentials are required"));
    };
    let credentials = credentials(value)?;
    let (secret, name) = match &credentials {
        Credentials::Bearer(secret) => (*secret, None),
        Credentials::Basic { name, secret } => (secret.as_str(), Some(name.as_str())),
    };
    let principal = authenticate_secret(state, secret).await?;
    if let Some(name) = name
        && !bool::from(
            name.as_bytes()
                .ct_eq(principal.key_name.as_str().as_bytes()),
        )
    {
        return Err(Failure::unauthorized("unknown credentials"));
    }
    Ok(principal)
}

/// The scope a route needs, as a type.
pub trait Role: Send + Sync + 'static {
    const SCOPE: Scope;
}

/// Routes that only read.
pub struct Read;
/// Routes that change customers, wallets and balances.
pub struct Write;
/// Routes that manage keys and tenants.
pub struct Admin;

impl Role for Read {
    const SCOPE: Scope = Scope::Read;
}
impl Role for Write {
    const SCOPE: Scope = Scope::Write;
}
impl Role for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// An authenticated caller whose key grants `R`'s scope; extracting it answers 401 or
/// 403 before the body is even read. `E` is the dialect's error type, so each dialect
/// answers those in its own shape.
pub struct Caller<R: Role, E = Problem> {
    pub principal: Arc<Principal>,
    _role: PhantomData<(R, E)>,
}

impl<R: Role, E> std::ops::Deref for Caller<R, E> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<R: Role, E> FromRequestParts<SharedState> for Caller<R, E>
where
    E: From<Failure> + axum::response::IntoResponse,
{
    type Rejection = E;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let principal = authenticate(state, parts).await?;
        if !grants(principal.scopes, R::SCOPE) {
            return Err(Failure::forbidden(format!(
                "this key lacks the {} scope",
                R::SCOPE.as_str()
            ))
            .into());
        }
        Ok(Self {
            principal,
            _role: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_distinct_and_prefixed() {
        let a = generate_secret();
        assert!(a.starts_with("pp_") && a.len() == 3 + 43, "{a}");
        assert_ne!(a, generate_secret());
    }

    #[test]
    fn scopes_imply_each_other() {
        let admin = Scopes {
            read: false,
            write: false,
            admin: true,
        };
        let write = Scopes {
            read: false,
            write: true,
            admin: false,
        };
        let read = Scopes {
            read: true,
            write: false,
            admin: false,
        };
        assert!(grants(admin, Scope::Read) && grants(admin, Scope::Write));
        assert!(grants(write, Scope::Read) && !grants(write, Scope::Admin));
        assert!(grants(read, Scope::Read) && !grants(read, Scope::Write));
        assert!(!grants(Scopes::default(), Scope::Read));
    }

    #[test]
    fn authorization_headers_parse() {
        assert!(matches!(
            parse_authorization("Bearer pp_abc"),
            Ok(Credentials::Bearer("pp_abc"))
        ));
        // "ops:pp_x" in base64.
        match parse_authorization("basic b3BzOnBwX3g=") {
            Ok(Credentials::Basic { name, secret }) => {
                assert_eq!((name.as_str(), secret.as_str()), ("ops", "pp_x"));
            }
            _ => panic!("Basic credentials did not parse"),
        }
        assert!(parse_authorization("Bearer ").is_err());
        assert!(parse_authorization("Basic !!!").is_err());
        assert!(parse_authorization("Digest x").is_err());
    }

    #[test]
    fn authorization_header_length_is_bounded() {
        let at = format!(
            "Bearer {}",
            "s".repeat(AUTHORIZATION_LEN_MAX - "Bearer ".len())
        );
        assert!(credentials(&HeaderValue::from_str(&at).unwrap()).is_ok());
        let over = format!("{at}s");
        let err = credentials(&HeaderValue::from_str(&over).unwrap())
            .err()
            .unwrap();
        assert_eq!(err.code, "unauthorized");
    }

    #[test]
    fn cache_is_bounded() {
        let cache = AuthCache::default();
        for i in 0..=AUTH_CACHE_ENTRIES_MAX {
            let secret = format!("pp_{i}");
            cache.put(&ApiKey {
                tenant: TenantId::parse("t").unwrap(),
                name: ApiKeyName::parse("k").unwrap(),
                secret_sha256: secret_digest(&secret),
                scopes: Scopes::ALL,
                customer: None,
                created_at: prepaid_ledger::Timestamp::from_secs(0),
            });
        }
        let len = cache.entries.read().unwrap().len();
        assert!(len <= AUTH_CACHE_ENTRIES_MAX);
        assert!(
            cache
                .get(&secret_digest(&format!("pp_{AUTH_CACHE_ENTRIES_MAX}")))
                .is_some()
        );
    }
}
