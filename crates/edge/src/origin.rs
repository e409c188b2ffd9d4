//! The external URL of a request: the scheme and host the client addressed, which every
//! dialect's absolute hrefs (`self`, `next`, items, `Location`) are built on.
//!
//! Behind a proxy the request's own `Host` is often the internal one (nginx's default
//! rewrites it), so the proxy's account comes first:
//!
//! 1. `Forwarded` (RFC 7239): `proto` and `host` of its first element, the one the
//!    client's side of the first proxy wrote;
//! 2. `X-Forwarded-Proto` and `X-Forwarded-Host`: their first values;
//! 3. the request's own authority (an absolute request URI), then `Host`.
//!
//! The scheme is `https` or `http` (anything else is ignored); the host is used only when
//! it is a plain authority (a host name, an IPv4 or bracketed IPv6 address, an optional
//! port, at most [`HOST_LEN_MAX`] bytes), so nothing a client sends can end or redirect a
//! URL. A request that names no usable host gets relative hrefs.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};
use forwarded_header_value::{ForwardedHeaderValue, Protocol};

/// The longest host (with its port) used in hrefs, in bytes.
pub const HOST_LEN_MAX: usize = 255;

/// How the client addressed the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The authority, when the request named a usable one.
    pub host: Option<String>,
}

impl Origin {
    /// The origin of a request with `uri` and `headers`.
    pub fn of(uri: &Uri, headers: &HeaderMap) -> Self {
        // The first element as written (the crate's "remotest" answers the last).
        let (forwarded_host, forwarded_proto) = headers
            .get("forwarded")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| ForwardedHeaderValue::from_forwarded(v).ok())
            .and_then(|f| {
                f.iter()
                    .next()
                    .map(|first| (first.forwarded_host.clone(), first.forwarded_proto))
            })
            .unwrap_or((None, None));
        let forwarded_scheme = forwarded_proto.map(|p| match p {
            Protocol::Http => "http",
            Protocol::Https => "https",
        });
        let scheme = forwarded_scheme
            .or_else(|| first(headers, "x-forwarded-proto").and_then(scheme))
            .or_else(|| uri.scheme_str().and_then(scheme))
            .unwrap_or("http");
        let host = forwarded_host
            .filter(|h| is_host(h))
            .or_else(|| {
                first(headers, "x-forwarded-host")
                    .filter(|h| is_host(h))
                    .map(str::to_owned)
            })
            .or_else(|| {
                uri.authority()
                    .map(|a| a.as_str())
                    .filter(|h| is_host(h))
                    .map(str::to_owned)
            })
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| is_host(h))
                    .map(str::to_owned)
            });
        Self { scheme, host }
    }

    /// `scheme://host`, or empty when the request named no usable host (the hrefs are
    /// then relative to the server).
    pub fn base(&self) -> String {
        match &self.host {
            Some(host) => format!("{}://{host}", self.scheme),
            None => String::new(),
        }
    }

    /// `scheme://host`, with `fallback` for a request that named no usable host.
    pub fn base_or(&self, fallback: &str) -> String {
        format!(
            "{}://{}",
            self.scheme,
            self.host.as_deref().unwrap_or(fallback)
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.uri, &parts.headers))
    }
}

/// The first of a header's comma-separated values: a proxy appends its own after the
/// client's, and the first is the client's view of the server.
fn first<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(value.split(',').next().unwrap_or_default().trim())
}

fn scheme(s: &str) -> Option<&'static str> {
    if s.eq_ignore_ascii_case("https") {
        Some("https")
    } else if s.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// Whether `host` may stand as the authority of an href: a host name, an IPv4 or a
/// bracketed IPv6 address, and an optional port; nothing that could end the URL.
pub fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= HOST_LEN_MAX
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(uri: &str, pairs: &[(&'static str, &str)]) -> String {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        Origin::of(&uri.parse().unwrap(), &headers).base()
    }

    #[test]
    fn the_proxys_account_comes_first() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], ""),
            (&[("host", "example.com:8080")], "http://example.com:8080"),
            (
                &[
                    ("host", "internal:8080"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "api.example.com, proxy"),
                ],
                "https://api.example.com",
            ),
            (
                &[
                    ("host", "internal:8080"),
                    (
                        "forwarded",
                        "for=192.0.2.60;proto=https;host=shop.example, for=10.0.0.1",
                    ),
                    ("x-forwarded-host", "other.example"),
                ],
                "https://shop.example",
            ),
            (
                &[
                    ("host", "internal"),
                    ("forwarded", "for=192.0.2.60;proto=https"),
                ],
                "https://internal",
            ),
            (
                &[("host", "internal"), ("forwarded", "not a forwarded value")],
                "http://internal",
            ),
            (
                &[("host", "a"), ("x-forwarded-proto", "HTTPS, http")],
                "https://a",
            ),
            (
                &[("host", "a"), ("x-forwarded-proto", "gopher")],
                "http://a",
            ),
            // A host that could end or redirect the URL is not used.
            (
                &[
                    ("host", "example.com:8080"),
                    ("x-forwarded-host", "evil.com/x?"),
                ],
                "http://example.com:8080",
            ),
            (&[("host", "user@evil")], ""),
            (&[("host", "a b/c")], ""),
            (&[("host", "[::1]:80")], "http://[::1]:80"),
        ];
        for (pairs, want) in cases {
            assert_eq!(origin("/x", pairs), *want, "{pairs:?}");
        }
        assert_eq!(origin("http://10.0.0.1:9/x", &[]), "http://10.0.0.1:9");
    }

    #[test]
    fn hosts_are_bounded() {
        let at = format!("{}.com", "a".repeat(HOST_LEN_MAX - 4));
        assert_eq!(at.len(), HOST_LEN_MAX);
        assert_eq!(origin("/x", &[("host", &at)]), format!("http://{at}"));
        let over = format!("{}.com", "a".repeat(HOST_LEN_MAX));
        assert_eq!(origin("/x", &[("host", &over)]), "");
        let none = Origin::of(&"/x".parse().unwrap(), &HeaderMap::new());
        assert_eq!(none.base_or("localhost"), "http://localhost");
    }
}
