//! The context of every TouchTopUp request: the answer format, the parameters (path,
//! query and body merged, see [`super::params`]), the API key from `X-API-KEY` and the
//! company it is limited to; and the rendering of answers in JSON or XML.
//!
//! The format is XML when the path has `/format/xml`, the query `format=xml`, or (with
//! neither) `Accept` names `application/xml` or `text/xml` before any JSON type; JSON
//! otherwise. Errors found before the format is known (a malformed `format`) are JSON.

use super::errors::{Fail, store_fail};
use super::model::{KEY_KIND, KeyScope, Recs, User};
use super::params::{Params, Secret, parse_tail};
use super::xml::{Node, to_xml};
use super::{DialectState, HandlerState};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prepaid_edge::SharedState;
use prepaid_edge::auth::{AUTHORIZATION_LEN_MAX, Principal, Role, authenticate_secret, grants};
use prepaid_ledger::Timestamp;
use std::marker::PhantomData;
use std::sync::Arc;

/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// How an answer is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

/// An answer in `format`.
pub fn render(format: Format, status: StatusCode, body: &Node) -> Response {
    let (bytes, content_type) = match format {
        Format::Json => match serde_json::to_vec(body) {
            Ok(b) => (b, "application/json; charset=utf-8"),
            Err(e) => {
                tracing::error!(error = %e, "serialising a TouchTopUp answer failed");
                return (StatusCode::INTERNAL_SERVER_ERROR, "").into_response();
            }
        },
        Format::Xml => (to_xml(body).into_bytes(), "application/xml; charset=utf-8"),
    };
    let mut response = (status, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The whole HTTP/1.1 answer to a request line too long for the server to read (past
/// its URI limit, before any route), when the line is one of this dialect's: status 0
/// and a `msg`, in the format the visible part of the line names (`format/xml`,
/// `format=xml`), JSON otherwise. `prefix` is the line's first bytes; `None` for a
/// line that is not under [`super::MOUNT`].
pub fn request_line_too_long(prefix: &[u8]) -> Option<Vec<u8>> {
    let line = String::from_utf8_lossy(prefix);
    let target = line.split(' ').nth(1)?;
    let path = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .map_or(target, |rest| rest.find('/').map_or("", |at| &rest[at..]));
    if !(path == super::MOUNT || path.starts_with(&format!("{}/", super::MOUNT))) {
        return None;
    }
    let format = if path.contains("format/xml") || path.contains("format=xml") {
        Format::Xml
    } else {
        Format::Json
    };
    let fail = Fail::new(StatusCode::URI_TOO_LONG, "The URL is too long");
    let (body, content_type) = match format {
        Format::Json => (
            serde_json::to_vec(&fail.body()).ok()?,
            "application/json; charset=utf-8",
        ),
        Format::Xml => (
            to_xml(&fail.body()).into_bytes(),
            "application/xml; charset=utf-8",
        ),
    };
    let mut answer = format!(
        "HTTP/1.1 414 URI Too Long\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

/// The answer of a failure in `format`.
pub fn render_fail(format: Format, fail: &Fail) -> Response {
    let mut response = render(format, fail.http, &fail.body());
    if let Some(secs) = fail.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The answer of a handler: `status` 1 answers are 200.
pub fn reply(format: Format, result: Result<Node, Fail>) -> Response {
    match result {
        Ok(node) => render(format, StatusCode::OK, &node),
        Err(fail) => render_fail(format, &fail),
    }
}

/// The path after `/<controller>/<method>`, with the mount point taken off if the
/// router left it on.
fn tail(path: &str) -> &str {
    let path = path.strip_prefix(super::MOUNT).unwrap_or(path);
    let path = path.strip_prefix('/').unwrap_or(path);
    let mut parts = path.splitn(3, '/');
    let _controller = parts.next();
    let _method = parts.next();
    parts.next().unwrap_or("")
}

fn format_named(value: &str) -> Result<Format, Fail> {
    match value.to_ascii_lowercase().as_str() {
        "json" => Ok(Format::Json),
        "xml" => Ok(Format::Xml),
        other => Err(Fail::bad(format!(
            "format must be json or xml, got {other:?}"
        ))),
    }
}

fn query_pairs(parts: &Parts) -> Result<Vec<(String, String)>, Fail> {
    match parts.uri.query() {
        None => Ok(Vec::new()),
        Some(q) => form_pairs(q),
    }
}

/// The format of a request (see the module documentation), from what is there even
/// when the rest of the request is malformed.
pub fn detect_format(parts: &Parts) -> Result<Format, Fail> {
    let tail = tail(parts.uri.path());
    if let Ok(pairs) = parse_tail(tail) {
        if let Some((_, v)) = pairs.iter().find(|(n, _)| n == "format") {
            return format_named(v);
        }
    } else if tail.contains("format/xml") {
        return Ok(Format::Xml);
    }
    if let Ok(pairs) = query_pairs(parts)
        && let Some((_, v)) = pairs.iter().find(|(n, _)| n.eq_ignore_ascii_case("format"))
    {
        return format_named(v);
    }
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(format_accepted(accept))
}

/// The format an `Accept` header asks for: of JSON and XML, the one with the higher
/// q-value (the first listed of equals), JSON when it names neither. A browser (one
/// that accepts HTML) gets JSON whatever it says of XML, as CodeIgniter's REST library
/// answers it.
pub fn format_accepted(accept: &str) -> Format {
    let mut best: Option<(u16, Format)> = None;
    for media in accept.split(',') {
        let mut parts = media.split(';');
        let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .map(quality)
            .next()
            .unwrap_or(1000);
        if q == 0 {
            continue;
        }
        let format = match essence.as_str() {
            "text/html" | "application/xhtml+xml" => return Format::Json,
            "application/xml" | "text/xml" => Format::Xml,
            "application/json" | "text/json" => Format::Json,
            _ => continue,
        };
        if best.is_none_or(|(b, _)| q > b) {
            best = Some((q, format));
        }
    }
    best.map_or(Format::Json, |(_, f)| f)
}

/// A q-value in thousandths (`0.9` is 900); one that is not a number is 0.
fn quality(text: &str) -> u16 {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole: u16 = match whole {
        "0" => 0,
        "1" => 1000,
        _ => return 0,
    };
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().unwrap_or(0);
    (whole + thousandths).min(1000)
}

/// The fields of a form-encoded, multipart or JSON object body.
async fn body_pairs(parts: &Parts, bytes: Bytes) -> Result<Vec<(String, String)>, Fail> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let header_value = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let content_type = header_value.to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        return multipart_pairs(header_value, bytes).await;
    }
    let bytes = &bytes[..];
    if content_type.contains("json") {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Fail::bad(format!("the body is not valid JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(Fail::bad("the JSON body must be an object"));
        };
        let mut out = Vec::with_capacity(map.len());
        for (name, v) in map {
            let text = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => if b { "1" } else { "0" }.to_owned(),
                _ => {
                    return Err(Fail::bad(format!(
                        "{name} must be text or a number, not a list or object"
                    )));
                }
            };
            out.push((name, text));
        }
        return Ok(out);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| Fail::bad("the body is not UTF-8 text"))?;
    form_pairs(text)
}

/// The fields of a `multipart/form-data` body (what PHP clients send when a field is
/// an array), as form fields; a file is refused, and so are more fields than a request
/// may carry or a field longer than a value may be.
async fn multipart_pairs(content_type: &str, bytes: Bytes) -> Result<Vec<(String, String)>, Fail> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| Fail::bad(format!("the multipart body has no boundary: {e}")))?;
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().per_field(super::params::VALUE_LEN_MAX as u64));
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(bytes) });
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut out = Vec::new();
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| Fail::bad(format!("the multipart body is malformed: {e}")))?;
        let Some(field) = field else {
            return Ok(out);
        };
        if out.len() == super::params::PAIRS_MAX {
            return Err(Fail::bad(format!(
                "more than {} parameters",
                super::params::PAIRS_MAX
            )));
        }
        let name = field.name().unwrap_or_default().to_owned();
        if field.file_name().is_some() {
            return Err(Fail::bad(format!("{name}: files are not taken")));
        }
        let value = field
            .text()
            .await
            .map_err(|e| Fail::bad(format!("{name}: {e}")))?;
        out.push((name, value));
    }
}

/// The pairs of a query string or form body; a name or value that is not UTF-8 once
/// percent-decoded is refused.
fn form_pairs(text: &str) -> Result<Vec<(String, String)>, Fail> {
    prepaid_edge::form::pairs(text)
        .map_err(|e| Fail::bad(format!("{}: {}", e.name(), prepaid_edge::form::NOT_UTF8)))
}

/// Everything a TouchTopUp handler needs of its request, for a key granting `R`.
pub struct Ctx<R: Role> {
    pub format: Format,
    pub params: Params,
    pub principal: Arc<Principal>,
    /// The company a company key is limited to; `None` for a tenant-wide key.
    pub only_company: Option<u32>,
    pub now: Timestamp,
    /// The dialect's own state: its payment provider and throttle.
    pub own: Arc<DialectState>,
    _role: PhantomData<R>,
}

impl<R: Role> Ctx<R> {
    /// The tenant's records as of this request.
    pub fn recs<'a>(&'a self, state: &'a SharedState) -> Recs<'a> {
        Recs {
            state,
            own: &self.own,
            tenant: &self.principal.tenant,
            now: self.now,
        }
    }

    /// Refuses a company other than the key's own.
    pub fn check_company(&self, coid: u32) -> Result<(), Fail> {
        match self.only_company {
            Some(own) if own != coid => Err(Fail::forbidden(format!(
                "This API key is limited to company {own} and may not reach company {coid}"
            ))),
            _ => Ok(()),
        }
    }

    /// Whether this key may see company `coid`.
    pub fn sees_company(&self, coid: u32) -> bool {
        self.only_company.is_none_or(|own| own == coid)
    }

    /// Whether this key may see and act on `user`: a tenant-wide key every user, a
    /// company key the users created through a key of its company and those linked to
    /// one of its company's customers (see [`super::users`]).
    pub fn reaches_user(&self, user: &User) -> bool {
        match self.only_company {
            None => true,
            Some(own) => {
                user.company == Some(own) || user.links.iter().any(|link| link.coid == own)
            }
        }
    }

    /// The name under which the throttle counts failed guesses of `kind` (a login, a
    /// reset code, a link key) at `subject` through this key. A company key's failures
    /// are counted apart from other keys', so that guessing through one company's
    /// portal never locks a user out of another company's.
    pub fn throttle_name(&self, kind: &str, subject: &str) -> String {
        match self.only_company {
            Some(own) => format!("{own}/{kind}/{subject}"),
            None => format!("*/{kind}/{subject}"),
        }
    }

    /// The required parameter of the first of `names` present.
    pub fn require(&self, names: &[&str]) -> Result<&str, Fail> {
        self.params
            .get(names)
            .ok_or_else(|| Fail::bad(format!("{} is required", names[0])))
    }

    /// The required secret parameter `secret`.
    pub fn require_secret(&self, secret: Secret) -> Result<&str, Fail> {
        self.params
            .secret(secret)
            .ok_or_else(|| Fail::bad(format!("{} is required", secret.names()[0])))
    }

    /// A required numeric id parameter.
    pub fn number(&self, names: &[&str], max: u32) -> Result<u32, Fail> {
        super::types::number(names[0], self.require(names)?, max)
    }

    /// An optional numeric id parameter.
    pub fn number_opt(&self, names: &[&str], max: u32) -> Result<Option<u32>, Fail> {
        self.params
            .get(names)
            .map(|v| super::types::number(names[0], v, max))
            .transpose()
    }

    /// An optional text parameter, checked, empty when absent.
    pub fn text(&self, names: &[&str]) -> Result<String, Fail> {
        super::types::text(names[0], self.params.get(names).unwrap_or(""))
    }

    /// The answer of `result` in this request's format.
    pub fn reply(&self, result: Result<Node, Fail>) -> Response {
        reply(self.format, result)
    }
}

async fn context<R: Role>(req: Request, state: &HandlerState) -> Result<Ctx<R>, Fail> {
    let own = state.own.clone();
    let state = &state.app;
    let (parts, body) = req.into_parts();
    let mut params = Params::default();
    params
        .merge(parse_tail(tail(parts.uri.path())).map_err(|e| Fail::bad(e.to_string()))?)
        .map_err(|e| Fail::bad(e.to_string()))?;
    params
        .merge(query_pairs(&parts)?)
        .map_err(|e| Fail::bad(e.to_string()))?;
    let Some(key) = parts.headers.get(API_KEY_HEADER) else {
        return Err(Fail::new(
            StatusCode::UNAUTHORIZED,
            "API key required: send it in the X-API-KEY header",
        ));
    };
    let invalid = || Fail::forbidden("Invalid API Key");
    if key.len() > AUTHORIZATION_LEN_MAX {
        return Err(invalid());
    }
    let key = key.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty() {
        return Err(invalid());
    }
    let principal = authenticate_secret(state, key).await.map_err(|p| {
        if p.status == StatusCode::UNAUTHORIZED {
            invalid()
        } else {
            Fail::from(p)
        }
    })?;
    if !grants(principal.scopes, R::SCOPE) {
        return Err(Fail::forbidden(format!(
            "This API key lacks the {} scope",
            R::SCOPE.as_str()
        )));
    }
    if principal.customer.is_some() {
        return Err(Fail::forbidden(
            "This API key is restricted to one customer and cannot be used with TouchTopUp",
        ));
    }
    if parts.method == Method::POST {
        let limit = state.body_bytes_max;
        let too_large = || {
            Fail::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request body exceeds {limit} bytes"),
            )
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| too_large())?;
        params
            .merge(body_pairs(&parts, bytes).await?)
            .map_err(|e| Fail::bad(e.to_string()))?;
    }
    let only_company = state
        .store
        .record(
            &principal.tenant,
            KEY_KIND,
            &crate::model::record_key(principal.key_name.as_str())?,
        )
        .await
        .map_err(|e| store_fail(&e, "reading an API key's company"))?
        .map(|r| {
            serde_json::from_str::<KeyScope>(&r.value).map_err(|e| {
                tracing::error!(error = %e, "a corrupt TouchTopUp key record");
                Fail::internal()
            })
        })
        .transpose()?
        .map(|k| k.coid);
    Ok(Ctx {
        format: Format::Json,
        params,
        principal,
        only_company,
        now: state.clock.now(),
        own,
        _role: PhantomData,
    })
}

impl<R: Role> FromRequest<HandlerState> for Ctx<R> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &HandlerState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let format = match detect_format(&parts) {
            Ok(f) => f,
            Err(fail) => return Err(render_fail(Format::Json, &fail)),
        };
        match context::<R>(Request::from_parts(parts, body), state).await {
            Ok(mut ctx) => {
                ctx.format = format;
                Ok(ctx)
            }
            Err(fail) => Err(render_fail(format, &fail)),
        }
    }
}

/// The answer to a route or method the dialect does not have, in the request's format.
pub async fn unknown(req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let format = detect_format(&parts).unwrap_or(Format::Json);
    render_fail(format, &Fail::not_found("Unknown method"))
}

/// The answer to a method the route does not take.
pub async fn wrong_method(req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let format = detect_format(&parts).unwrap_or(Format::Json);
    render_fail(
        format,
        &Fail::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on this method", parts.method),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, accept: Option<&str>) -> Parts {
        let mut b = axum::http::Request::get(uri);
        if let Some(a) = accept {
            b = b.header(header::ACCEPT, a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn over_long_request_lines_answer_in_the_dialects_shape() {
        let long = "a".repeat(100);
        let json = request_line_too_long(
            format!("GET /index.php/accounts/company_details/cid/1/x/{long}").as_bytes(),
        )
        .unwrap();
        let text = String::from_utf8(json).unwrap();
        assert!(text.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{text}");
        assert!(
            text.ends_with(r#"{"status":0,"msg":"The URL is too long"}"#),
            "{text}"
        );
        let xml = request_line_too_long(
            format!("GET http://h/index.php/accounts/x/format/xml/y/{long}").as_bytes(),
        )
        .unwrap();
        let text = String::from_utf8(xml).unwrap();
        assert!(text.contains("application/xml") && text.contains("<status>0</status>"));
        assert_eq!(request_line_too_long(b"GET /v1/customers/aaaa"), None);
        assert_eq!(request_line_too_long(b"GET /index.phpx/aaaa"), None);
        assert_eq!(request_line_too_long(b"garbage"), None);
    }

    #[test]
    fn accept_q_values_choose_the_format() {
        let cases = [
            ("", Format::Json),
            ("application/xml", Format::Xml),
            ("text/xml", Format::Xml),
            ("application/json;q=0.5, application/xml", Format::Xml),
            (
                "application/xml;q=0.4, application/json;q=0.8",
                Format::Json,
            ),
            ("application/xml;q=0, application/json;q=0", Format::Json),
            ("application/xml;q=0.000", Format::Json),
            ("application/json, application/xml", Format::Json),
            ("application/xml;q=1.0, application/json;q=1", Format::Xml),
            ("application/xml; q=0.9", Format::Xml),
            ("application/xml;q=abc", Format::Json),
            // A browser's.
            (
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                Format::Json,
            ),
            ("image/png, */*", Format::Json),
        ];
        for (accept, want) in cases {
            assert_eq!(format_accepted(accept), want, "{accept}");
        }
    }

    #[test]
    fn format_comes_from_path_query_or_accept() {
        let cases = [
            (
                "/accounts/customer_balance/coid/1/custid/5",
                None,
                Format::Json,
            ),
            (
                "/accounts/customer_balance/coid/1/format/xml",
                None,
                Format::Xml,
            ),
            (
                "/index.php/accounts/customer_balance/coid/1/format/xml",
                None,
                Format::Xml,
            ),
            (
                "/accounts/customer_balance/coid/1?format=xml",
                None,
                Format::Xml,
            ),
            (
                "/accounts/customer_balance/coid/1",
                Some("application/xml"),
                Format::Xml,
            ),
            (
                "/accounts/customer_balance/coid/1",
                Some("text/xml;q=0.9"),
                Format::Xml,
            ),
            (
                "/accounts/customer_balance/coid/1",
                Some("application/json, application/xml"),
                Format::Json,
            ),
            (
                "/accounts/customer_balance/coid/1/format/json",
                Some("application/xml"),
                Format::Json,
            ),
            (
                "/accounts/customer_balance/coid//format/xml",
                None,
                Format::Xml,
            ),
        ];
        for (uri, accept, want) in cases {
            assert_eq!(
                detect_format(&parts(uri, accept)),
                Ok(want),
                "{uri} {accept:?}"
            );
        }
        assert!(detect_format(&parts("/accounts/x/format/csv", None)).is_err());
    }

    #[test]
    fn the_tail_follows_controller_and_method() {
        assert_eq!(tail("/accounts/customer_balance/coid/1"), "coid/1");
        assert_eq!(
            tail("/index.php/accounts/customer_balance/coid/1/"),
            "coid/1/"
        );
        assert_eq!(tail("/accounts/customer_balance"), "");
    }
}
