//! The wire side of the TMF dialect: the two flavours, request bodies read as JSON
//! with exact numbers, and the pieces every answer is built from (quantities,
//! references, the merge of what the client sent with what the ledger says).
//!
//! Request bodies are kept as `serde_json::Value`s rather than typed structs: TMF
//! clients send many optional members, all of which must come back, so the dialect
//! reads the few it acts on by JSON pointer and keeps the whole body as sent. Every
//! number of a body is replaced by its exact text (see [`super::json`]) before anything
//! reads it.

use super::amount;
use super::errors::TmfError;
use super::json::{decimal, number_texts};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use prepaid_edge::SharedState;
use prepaid_edge::body::{fingerprint, idempotency_key, read_body};
use prepaid_edge::origin::Origin;
use prepaid_ledger::{Fingerprint, IdempotencyKey, Unit};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Which document a mount answers as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// TM Forum's TMF654 v4 OpenAPI file.
    Tmf,
    /// Oracle BRM's REST document of the same API.
    Brm,
}

impl Flavour {
    pub fn mount(self) -> &'static str {
        match self {
            Flavour::Tmf => super::MOUNT_TMF,
            Flavour::Brm => super::MOUNT_BRM,
        }
    }
}

/// The flavour of a request and the base its `href`s are built on.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub flavour: Flavour,
    /// `http://host:port/<mount>`, or just the mount when the request named no
    /// usable host.
    pub root: String,
}

impl Ctx {
    /// The context of a request of `flavour` that addressed the server as `origin`
    /// (see [`prepaid_edge::origin`]).
    pub fn new(flavour: Flavour, origin: &Origin) -> Self {
        let root = format!("{}{}", origin.base(), flavour.mount());
        Self { flavour, root }
    }

    pub fn is_brm(&self) -> bool {
        self.flavour == Flavour::Brm
    }

    /// The `href` of resource `id` of the collection `collection` (`bucket`, ...).
    pub fn href(&self, collection: &str, id: &str) -> String {
        format!("{}/{collection}/{id}", self.root)
    }
}

impl FromRequestParts<SharedState> for Ctx {
    type Rejection = TmfError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let flavour = parts
            .extensions
            .get::<Flavour>()
            .copied()
            .unwrap_or(Flavour::Tmf);
        Ok(Ctx::new(flavour, &Origin::of(&parts.uri, &parts.headers)))
    }
}

/// The single `{id}` segment of a route's path, percent-decoded; a malformed one is
/// refused in the TMF error shape.
pub type PathSegment = prepaid_edge::PathSegment<TmfError>;

/// A request body: a JSON object whose numbers are exact decimal texts, and the
/// request's idempotency key with its fingerprint.
///
/// Any content type is accepted as long as the body is JSON: Oracle's own examples
/// send it with `curl -d`, which labels it a form.
pub struct Body {
    pub value: Value,
    pub idempotency: Option<(IdempotencyKey, Fingerprint)>,
}

impl FromRequest<SharedState> for Body {
    type Rejection = TmfError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let key = idempotency_key(req.headers())?;
        let method = req.method().clone();
        let path = req
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| req.uri().path(), |u| u.0.path())
            .to_owned();
        let bytes = read_body(req, state.body_bytes_max).await?;
        let parsed: Value = serde_json::from_slice(&bytes)
            .map_err(|e| TmfError::invalid(format!("the body is not valid JSON: {e}")))?;
        if !parsed.is_object() {
            return Err(TmfError::invalid("the body must be a JSON object"));
        }
        let idempotency = key.map(|k| (k, fingerprint(&method, &path, &parsed)));
        let texts = number_texts(&bytes);
        let mut pointer = String::new();
        let value = exact_numbers(parsed, &texts, &mut pointer);
        Ok(Self { value, idempotency })
    }
}

/// `value` with every number replaced by its exact text as found in the body.
fn exact_numbers(value: Value, texts: &HashMap<String, String>, pointer: &mut String) -> Value {
    match value {
        Value::Number(n) => match texts.get(pointer.as_str()) {
            Some(text) if amount::is_decimal(text) => decimal(text.clone()),
            // The walker always finds what serde_json found; an integer is exact anyway.
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    let out = exact_numbers(item, texts, pointer);
                    pointer.truncate(len);
                    out
                })
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, item)| {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    let out = exact_numbers(item, texts, pointer);
                    pointer.truncate(len);
                    (k, out)
                })
                .collect(),
        ),
        other => other,
    }
}

/// The text of a scalar: a string, or the exact text of a number.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(
            s.strip_prefix(super::json::DECIMAL_MARK)
                .unwrap_or(s)
                .to_owned(),
        ),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The field name of a JSON pointer (`/amount/amount` is `amount.amount`).
pub fn field_name(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// Reading the members a handler acts on.
pub trait Members {
    /// The value at `pointer`, `None` when absent or null.
    fn at(&self, pointer: &str) -> Option<&Value>;

    /// A string member.
    fn text(&self, pointer: &str) -> Result<Option<String>, TmfError> {
        match self.at(pointer) {
            None => Ok(None),
            Some(Value::String(s)) if !s.starts_with(super::json::DECIMAL_MARK) => {
                Ok(Some(s.clone()))
            }
            Some(_) => Err(TmfError::field(&field_name(pointer), "must be a string")),
        }
    }

    /// A required string member.
    fn required_text(&self, pointer: &str) -> Result<String, TmfError> {
        self.text(pointer)?
            .ok_or_else(|| TmfError::missing(&field_name(pointer)))
    }

    /// An amount: a JSON number or a string, as its exact text.
    fn amount_text(&self, pointer: &str) -> Result<Option<String>, TmfError> {
        match self.at(pointer) {
            None => Ok(None),
            Some(v @ (Value::String(_) | Value::Number(_))) => Ok(scalar_text(v)),
            Some(_) => Err(TmfError::amount(
                &field_name(pointer),
                "must be a number or a string",
            )),
        }
    }

    /// A boolean, or the string `true` or `false` (as Oracle's examples send it).
    fn flag(&self, pointer: &str) -> Result<Option<bool>, TmfError> {
        match self.at(pointer) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(TmfError::field(
                &field_name(pointer),
                "must be true or false",
            )),
        }
    }

    /// A whole number, or a string of one (as Oracle's examples send it).
    fn integer(&self, pointer: &str) -> Result<Option<i64>, TmfError> {
        let Some(v) = self.at(pointer) else {
            return Ok(None);
        };
        let why = || TmfError::field(&field_name(pointer), "must be a whole number");
        let text = scalar_text(v).ok_or_else(why)?;
        amount::parse_minor(&text, 0).map(Some).map_err(|_| why())
    }
}

impl Members for Value {
    fn at(&self, pointer: &str) -> Option<&Value> {
        self.pointer(pointer).filter(|v| !v.is_null())
    }
}

/// An amount of `unit` in its smallest steps, as an answer shows it.
pub fn quantity(ctx: &Ctx, minor: i64, unit: &Unit) -> Value {
    let mut q = json!({
        "amount": decimal(amount::format_minor(minor, unit.scale())),
        "units": unit.code(),
    });
    if ctx.is_brm() {
        brm_nulls(&mut q, &["@baseType", "@schemaLocation", "@type"]);
    }
    q
}

/// A reference to bucket `id`.
pub fn bucket_ref(ctx: &Ctx, id: &str) -> Value {
    let href = ctx.href("bucket", id);
    match ctx.flavour {
        Flavour::Tmf => json!({"id": id, "href": href, "@referredType": "Bucket"}),
        Flavour::Brm => json!({
            "id": id, "href": href, "name": null, "@baseType": "BucketRef",
            "@schemaLocation": null, "@type": "BucketRef", "@referredType": null,
        }),
    }
}

/// A reference to party account (customer) `id` named `name`.
pub fn party_ref(ctx: &Ctx, id: &str, name: &str) -> Value {
    let name = (!name.is_empty()).then_some(name);
    match ctx.flavour {
        Flavour::Tmf => {
            let mut v = json!({"id": id, "@referredType": "PartyAccount"});
            if let Some(name) = name {
                v["name"] = json!(name);
            }
            v
        }
        Flavour::Brm => json!({
            "id": id, "href": null, "description": null, "name": name,
            "status": "active", "@baseType": null, "@schemaLocation": null,
            "@type": "PartyAccountRef", "@referredType": null,
        }),
    }
}

/// Sets each of `keys` that `v` lacks to null (Oracle's answers name every member).
pub fn brm_nulls(v: &mut Value, keys: &[&str]) {
    if let Value::Object(map) = v {
        for key in keys {
            map.entry(*key).or_insert(Value::Null);
        }
    }
}

/// What the client sent, with what the ledger says laid over it: `ours` wins, except
/// that our nulls never hide a client's value and the client's own `@type`,
/// `@baseType` and `@schemaLocation` (a subclass it names) are kept.
pub fn merge(client: &Value, ours: Value) -> Value {
    match (client, ours) {
        (Value::Object(c), Value::Object(o)) => {
            let mut out: Map<String, Value> = c.clone();
            for (key, value) in o {
                let keep_client = match c.get(&key) {
                    Some(cv) if !cv.is_null() => {
                        value.is_null() || (key.starts_with('@') && !cv.is_object())
                    }
                    _ => false,
                };
                if keep_client {
                    continue;
                }
                let merged = match c.get(&key) {
                    Some(cv @ Value::Object(_)) => merge(cv, value),
                    _ => value,
                };
                out.insert(key, merged);
            }
            Value::Object(out)
        }
        (_, ours) => ours,
    }
}

/// `v` without null members, recursively (TM Forum's schemas allow no nulls).
pub fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// An answer of either flavour: TM Forum's without nulls, Oracle's as built.
pub fn finish(ctx: &Ctx, v: Value) -> Value {
    match ctx.flavour {
        Flavour::Tmf => strip_nulls(v),
        Flavour::Brm => v,
    }
}

/// TM Forum's `ActionStatusType` of an action in the flavour's words: Oracle's
/// answers say `CONFIRMED` where TM Forum says `completed`.
pub fn action_status(ctx: &Ctx, status: ActionStatus) -> &'static str {
    match (ctx.flavour, status) {
        (Flavour::Tmf, ActionStatus::Created) => "created",
        (Flavour::Tmf, ActionStatus::Completed) => "completed",
        (Flavour::Tmf, ActionStatus::Cancelled) => "cancelled",
        (Flavour::Tmf, ActionStatus::Failed) => "failed",
        (Flavour::Brm, ActionStatus::Created) => "CREATED",
        (Flavour::Brm, ActionStatus::Completed) => "CONFIRMED",
        (Flavour::Brm, ActionStatus::Cancelled) => "CANCELLED",
        (Flavour::Brm, ActionStatus::Failed) => "FAILED",
    }
}

/// The state of an action (a top-up, an adjustment, a transfer, a reservation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionStatus {
    Created,
    Completed,
    Cancelled,
    Failed,
}

impl ActionStatus {
    /// Reads either flavour's word, ignoring ASCII case (`completed`, `CONFIRMED`).
    pub fn parse(s: &str) -> Option<Self> {
        let l = s.to_ascii_lowercase();
        match l.as_str() {
            "created" => Some(Self::Created),
            "completed" | "confirmed" => Some(Self::Completed),
            "cancelled" | "canceled" => Some(Self::Cancelled),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_the_client_sent() {
        let client = json!({"description": "x", "amount": {"amount": "2", "units": "USD",
            "@type": "Quantity"}, "status": "bogus", "@type": "TopupBalanceExt", "n": null});
        let ours = json!({"amount": {"amount": 2, "units": "USD", "@type": null},
            "status": "completed", "@type": "TopupBalance", "description": null, "id": "1"});
        let m = merge(&client, ours);
        assert_eq!(m["description"], "x");
        assert_eq!(m["amount"]["amount"], 2);
        assert_eq!(m["amount"]["@type"], "Quantity");
        assert_eq!(m["status"], "completed");
        assert_eq!(m["@type"], "TopupBalanceExt");
        assert_eq!(m["id"], "1");
        assert!(strip_nulls(m).get("n").is_none());
    }

    #[test]
    fn members_read_flexibly() {
        let v =
            json!({"a": "true", "b": false, "n": "2", "m": 3, "s": "x", "q": {"amount": "2.5"}});
        assert_eq!(v.flag("/a").unwrap(), Some(true));
        assert_eq!(v.flag("/b").unwrap(), Some(false));
        assert!(v.flag("/s").is_err());
        assert_eq!(v.integer("/n").unwrap(), Some(2));
        assert_eq!(v.integer("/m").unwrap(), Some(3));
        assert!(v.integer("/s").is_err());
        assert_eq!(v.amount_text("/q/amount").unwrap().as_deref(), Some("2.5"));
        assert_eq!(v.text("/missing").unwrap(), None);
        assert!(v.text("/m").is_err());
        assert_eq!(field_name("/q/amount"), "q.amount");
        assert!(v.required_text("/zz").is_err());
    }

    #[test]
    fn statuses_read_both_flavours() {
        assert_eq!(
            ActionStatus::parse("CONFIRMED"),
            Some(ActionStatus::Completed)
        );
        assert_eq!(
            ActionStatus::parse("completed"),
            Some(ActionStatus::Completed)
        );
        assert_eq!(
            ActionStatus::parse("Cancelled"),
            Some(ActionStatus::Cancelled)
        );
        assert_eq!(ActionStatus::parse("done"), None);
    }
}
