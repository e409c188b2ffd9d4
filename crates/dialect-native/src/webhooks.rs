//! Webhook endpoints (`/v1/webhook-endpoints`) and the delivery of the events the store's
//! executor puts in the outbox ([`prepaid_store::webhooks`]).
//!
//! # Endpoints
//!
//! An endpoint is a record of [`ENDPOINT_KIND`] keyed by its id (a UUID v7), with a
//! record of [`prepaid_store::webhooks::ENABLED_KIND`] beside it while it is enabled
//! (written in the same unit), which is how the executor learns that a tenant wants
//! events. An admin key manages endpoints; a read key lists them without their
//! secrets; a key restricted to one customer has none (an endpoint hears about every
//! customer). Each endpoint has its own secret, `whsec_` and the base64 of
//! [`SECRET_BYTES`] random bytes, shown once at creation and at rotation; a rotation
//! keeps the old secret for an overlap ([`SECRET_OVERLAP_SECS_MAX`] at most, 24 h by
//! default) during which deliveries carry both signatures.
//!
//! # Delivery
//!
//! The worker ([`run`], on every instance beside the sweeper) takes the outbox jobs and
//! fans each event out: for every enabled endpoint subscribed to its type it writes a
//! delivery record of [`DELIVERY_KIND`] (the log, keyed `<endpoint> <time> <event id>`),
//! a record of [`PENDING_KIND`] keyed `<endpoint> <wallet> <order>` (the lane of that
//! wallet at that endpoint, in the wallet's commit order) and makes sure the lane's
//! job of [`LANE_QUEUE`] exists. A wallet's events are fanned out in its order: those of
//! one claim one after the other, and across claims and instances each waits until the
//! record of [`FANNED_KIND`] shows the one before it (each event knows its predecessor,
//! see [`EventFacts::follows`]), so a lane never delivers an event before an earlier one
//! of its wallet has joined it. The event body is rendered once, at fan-out, in the
//! native API's shapes (the mutation and hold as they stand then). A lane's job delivers
//! the lane's first pending event, then the next: a failing delivery holds back the
//! later events of its wallet for that endpoint, and no other lane. A 2xx answer
//! delivers; anything else (or no answer within [`DELIVERY_TIMEOUT_MS`]) is retried
//! after [`RETRY_SCHEDULE_SECS`] with 10% jitter, [`DELIVERY_ATTEMPTS_MAX`] attempts
//! in all (about 2.8 days), after which the event is `failed` and the lane moves on.
//! An endpoint that has failed every delivery for [`FAILING_DISABLE_SECS`] (5 days) is
//! disabled, which its delivery log and the server's log say (`endpoint.disabled`).
//!
//! Delivery is at least once: jobs are claimed with a lease (row locks skipped by others
//! on PostgreSQL), so a worker that dies mid-delivery leaves the lane to another after
//! [`LANE_LEASE_MS`]; receivers deduplicate on `webhook-id`.
//!
//! # Signing
//!
//! As the Standard Webhooks specification says: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 of HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one
//! signature per live secret separated by a space, made by the `standardwebhooks`
//! crate.
//!
//! # Targets
//!
//! An endpoint's URL is `http` or `https`, and its host may not be loopback,
//! link-local, private (RFC 1918, `fc00::/7`), unspecified or multicast: checked at
//! creation and update for addresses written in the URL and for `localhost`, and at
//! every delivery for each address the name resolves to (the delivery connects to the
//! address checked), unless the operator started the server with
//! `--webhook-allow-private-targets`.

use crate::types::ProblemOut;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use prepaid_edge::auth::{Admin, Caller, Principal, Read};
use prepaid_edge::body::JsonBody;
use prepaid_edge::jobs::{self, micros};
use prepaid_edge::periodic::Ticker;
use prepaid_edge::problem::Problem;
use prepaid_edge::refusals;
use prepaid_edge::submit::Operation;
use prepaid_edge::time::WireTime;
use prepaid_edge::{PathSegment, SharedState, json_response, new_uuid, store_problem};
use prepaid_ledger::{HoldId, JobQueue, MutationId, RecordKey, RecordKind, TenantId, Timestamp};
use prepaid_store::webhooks::{ENABLED_KIND, EVENT_QUEUE, EventFacts, EventType};
use prepaid_store::{JOB_CLAIM_MAX, Job, PAGE_SIZE_MAX, Record, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use utoipa::ToSchema;

/// The record kind of endpoints.
pub const ENDPOINT_KIND: RecordKind = RecordKind::new("webhook.endpoint");
/// The record kind of the delivery log.
pub const DELIVERY_KIND: RecordKind = RecordKind::new("webhook.delivery");
/// The record kind of deliveries still to make, in lanes.
pub const PENDING_KIND: RecordKind = RecordKind::new("webhook.pending");
/// The job queue of lanes: one job per endpoint and wallet with pending deliveries.
pub const LANE_QUEUE: JobQueue = JobQueue::new("webhook.lane");
/// The record kind of how far each wallet's events were fanned out (keyed by wallet),
/// which keeps instances fanning out one wallet's events in its order.
pub const FANNED_KIND: RecordKind = RecordKind::new("webhook.fanned");

/// The most endpoints of one tenant.
pub const ENDPOINTS_PER_TENANT_MAX: usize = 20;
/// The longest endpoint URL, in bytes.
pub const URL_LEN_MAX: usize = 2048;
/// The most event types one endpoint subscribes to: every type, each once.
pub const EVENT_TYPES_PER_ENDPOINT_MAX: usize = EventType::ALL.len();
/// The longest description, in bytes.
pub const DESCRIPTION_LEN_MAX: usize = 512;
/// The largest event body, in bytes; a larger event is logged `too_large`, not sent.
pub const PAYLOAD_BYTES_MAX: usize = 32 * 1024;
/// How many random bytes a secret has.
pub const SECRET_BYTES: usize = 24;
/// The longest overlap of an old secret after a rotation (and the default).
pub const SECRET_OVERLAP_SECS_MAX: u64 = 24 * 3600;
/// How long an endpoint may take to answer one delivery.
pub const DELIVERY_TIMEOUT_MS: u64 = 10_000;
/// The waits after each failed attempt (Svix's schedule, stretched to about three
/// days); one attempt more than waits.
pub const RETRY_SCHEDULE_SECS: [u64; 11] = [
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    10 * 3600,
    10 * 3600,
    10 * 3600,
    10 * 3600,
    10 * 3600,
];
/// How many times one event is offered to one endpoint.
pub const DELIVERY_ATTEMPTS_MAX: u32 = RETRY_SCHEDULE_SECS.len() as u32 + 1;
/// How long an endpoint may fail every delivery before it is disabled.
pub const FAILING_DISABLE_SECS: i64 = 5 * 24 * 3600;
/// How long a claimed lane is leased to one worker.
pub const LANE_LEASE_MS: u64 = 30_000;
/// How long a claimed outbox event is leased to one worker.
pub const OUTBOX_LEASE_MS: u64 = 15_000;
/// The most deliveries one claim of a lane makes before it lets other lanes go.
pub const LANE_DELIVERIES_PER_CLAIM_MAX: usize = 100;
/// The most deliveries one replay queues again.
pub const REPLAY_DELIVERIES_MAX: usize = 1000;
/// The most deliveries one page of the log shows.
pub const DELIVERIES_PAGE_MAX: usize = 100;
/// How soon an event waiting for the one before it (fanned out by another instance)
/// looks again.
pub const FAN_OUT_RETRY_MS: u64 = 100;
/// How long an event waits for the one before it before it goes out anyway.
pub const FAN_OUT_WAIT_MS_MAX: u64 = 60_000;
/// How often the worker looks for due work.
pub const WORKER_INTERVAL_MS: u64 = 200;

/// What the operator decided about webhooks at start.
#[derive(Clone, Copy, Debug, Default)]
pub struct WebhookConfig {
    /// Deliver to loopback, private and link-local addresses too (for tests and
    /// closed networks).
    pub allow_private_targets: bool,
    /// The longest wait between attempts, shortening the schedule (for tests).
    pub retry_delay_ms_max: Option<u64>,
}

// ---------------------------------------------------------------------------------
// Records.

/// A secret of an endpoint, until when it signs (`None`: the current one).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Secret {
    secret: String,
    #[serde(default)]
    until_micros: Option<i64>,
}

/// An endpoint as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Endpoint {
    id: String,
    url: String,
    event_types: Vec<String>,
    description: String,
    enabled: bool,
    secrets: Vec<Secret>,
    created_at: i64,
    updated_at: i64,
    /// Since when every delivery failed; `None` while the last one succeeded.
    #[serde(default)]
    failing_since: Option<i64>,
    /// Why it was disabled by the server, if it was.
    #[serde(default)]
    disabled_reason: Option<String>,
}

impl Endpoint {
    fn subscribed(&self, event_type: EventType) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type.as_str())
    }

    /// The secrets that sign now: the current one, and an old one in its overlap.
    fn signing_secrets(&self, now: Timestamp) -> impl Iterator<Item = &str> {
        self.secrets
            .iter()
            .filter(move |s| s.until_micros.is_none_or(|until| until > now.as_micros()))
            .map(|s| s.secret.as_str())
    }
}

/// One delivery of one event to one endpoint: an entry of its log.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Delivery {
    event_id: String,
    event_type: String,
    wallet: String,
    /// The event body, as sent.
    body: String,
    /// `pending`, `delivered`, `failed`, `too_large` or `disabled`.
    state: String,
    attempts: u32,
    /// The attempt at which the current schedule began (a manual retry starts anew).
    #[serde(default)]
    schedule_from: u32,
    status_code: Option<u16>,
    response_ms: Option<u64>,
    next_attempt_micros: Option<i64>,
    created_at: i64,
    /// The lane key of its pending record while pending.
    #[serde(default)]
    pending_key: Option<String>,
}

fn tenant_key(text: impl Into<String>) -> Option<RecordKey> {
    RecordKey::parse(text).ok()
}

// ---------------------------------------------------------------------------------
// Wire types.

/// `POST /v1/webhook-endpoints`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointIn {
    /// `http` or `https`, at most 2048 bytes.
    url: String,
    /// The event types to receive; empty or absent receives every type.
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

/// `PATCH /v1/webhook-endpoints/{id}`: the members given are changed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEndpointIn {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

/// `POST /v1/webhook-endpoints/{id}/rotate-secret`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretIn {
    /// How long the old secret keeps signing, 0 to 86400 seconds (default 86400).
    #[serde(default)]
    overlap_secs: Option<u64>,
}

/// `POST /v1/webhook-endpoints/{id}/replay`: deliveries of events made in the range
/// are sent again.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    #[schema(value_type = String, format = DateTime)]
    from: WireTime,
    #[schema(value_type = String, format = DateTime)]
    to: WireTime,
}

/// An endpoint as answered; `secret` only on creation and rotation.
#[derive(Serialize, ToSchema)]
pub struct EndpointOut<'a> {
    id: &'a str,
    url: &'a str,
    event_types: &'a [String],
    description: &'a str,
    enabled: bool,
    /// Why the server disabled it, if it did.
    disabled_reason: Option<&'a str>,
    #[schema(value_type = String, format = DateTime)]
    created_at: WireTime,
    #[schema(value_type = String, format = DateTime)]
    updated_at: WireTime,
    /// `whsec_...`: shown once, on creation and rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
}

impl<'a> EndpointOut<'a> {
    fn new(e: &'a Endpoint, secret: Option<&'a str>) -> Self {
        Self {
            id: &e.id,
            url: &e.url,
            event_types: &e.event_types,
            description: &e.description,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.as_deref(),
            created_at: WireTime(Timestamp::from_micros(e.created_at)),
            updated_at: WireTime(Timestamp::from_micros(e.updated_at)),
            secret,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EndpointListOut<'a> {
    data: Vec<EndpointOut<'a>>,
}

/// An entry of an endpoint's delivery log.
#[derive(Serialize, ToSchema)]
pub struct DeliveryOut<'a> {
    id: &'a str,
    event_id: &'a str,
    event_type: &'a str,
    wallet_id: &'a str,
    /// `pending`, `delivered`, `failed` (attempts ran out), `too_large` or `disabled`
    /// (the endpoint was disabled).
    state: &'a str,
    attempts: u32,
    /// The status of the last answer, if there was one.
    status_code: Option<u16>,
    /// How long the last attempt took.
    response_ms: Option<u64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    next_attempt_at: Option<WireTime>,
    #[schema(value_type = String, format = DateTime)]
    created_at: WireTime,
}

impl<'a> DeliveryOut<'a> {
    fn new(id: &'a str, d: &'a Delivery) -> Self {
        Self {
            id,
            event_id: &d.event_id,
            event_type: &d.event_type,
            wallet_id: &d.wallet,
            state: &d.state,
            attempts: d.attempts,
            status_code: d.status_code,
            response_ms: d.response_ms,
            next_attempt_at: d
                .next_attempt_micros
                .map(|t| WireTime(Timestamp::from_micros(t))),
            created_at: WireTime(Timestamp::from_micros(d.created_at)),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryPageOut<'a> {
    data: Vec<DeliveryOut<'a>>,
    /// Pass as `after` for the next page; absent on the last.
    next_cursor: Option<String>,
}

/// `?after=&limit=` of the delivery log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayOut {
    /// How many deliveries were queued again.
    queued: usize,
}

// ---------------------------------------------------------------------------------
// Checks.

fn not_found() -> Problem {
    Problem::not_found("webhook_endpoint_not_found", "no such webhook endpoint")
}

fn delivery_not_found() -> Problem {
    Problem::not_found("webhook_delivery_not_found", "no such webhook delivery")
}

fn store_error(e: &StoreError, context: &str) -> Problem {
    store_problem(e, context).into()
}

/// An endpoint hears about every customer, so a key restricted to one has none.
fn whole_tenant(caller: &Principal) -> Result<(), Problem> {
    if caller.customer.is_some() {
        return Err(not_found());
    }
    Ok(())
}

/// Whether `ip` is an address an endpoint may not have.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_ip(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Checks an endpoint URL: `http` or `https` with a host, at most [`URL_LEN_MAX`]
/// bytes, and (unless allowed) no address or name of this machine or a private
/// network.
fn check_url(url: &str, config: WebhookConfig) -> Result<(), String> {
    if url.len() > URL_LEN_MAX {
        return Err(format!("must be at most {URL_LEN_MAX} bytes"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".to_owned());
    }
    let host = parsed.host().ok_or("must name a host")?;
    if config.allow_private_targets {
        return Ok(());
    }
    let refused = match host {
        url::Host::Ipv4(ip) => forbidden_ip(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => forbidden_ip(IpAddr::V6(ip)),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if refused {
        return Err(
            "must not name a loopback, private, link-local, unspecified or multicast address"
                .to_owned(),
        );
    }
    Ok(())
}

fn check_event_types(types: Option<Vec<String>>) -> Result<Vec<String>, Problem> {
    let types = types.unwrap_or_default();
    if types.len() > EVENT_TYPES_PER_ENDPOINT_MAX {
        return Err(Problem::invalid_field(
            "event_types",
            format_args!("must list at most {EVENT_TYPES_PER_ENDPOINT_MAX} types"),
        ));
    }
    let mut seen = Vec::with_capacity(types.len());
    for t in &types {
        if EventType::parse(t).is_none() {
            return Err(Problem::invalid_field(
                "event_types",
                format_args!("{t:?} is not an event type"),
            ));
        }
        if seen.contains(&t) {
            return Err(Problem::invalid_field(
                "event_types",
                format_args!("{t:?} is listed twice"),
            ));
        }
        seen.push(t);
    }
    Ok(types)
}

fn check_description(description: Option<String>) -> Result<String, Problem> {
    let description = description.unwrap_or_default();
    if description.len() > DESCRIPTION_LEN_MAX {
        return Err(Problem::invalid_field(
            "description",
            format_args!("must be at most {DESCRIPTION_LEN_MAX} bytes"),
        ));
    }
    Ok(description)
}

/// A new secret: `whsec_` and the base64 of [`SECRET_BYTES`] random bytes.
fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

// ---------------------------------------------------------------------------------
// Handlers.

type Answer = Result<Response, Problem>;

async fn endpoints(state: &SharedState, tenant: &TenantId) -> Result<Vec<Endpoint>, Problem> {
    let records = state
        .store
        .records(tenant, ENDPOINT_KIND, None, PAGE_SIZE_MAX)
        .await
        .map_err(|e| store_error(&e, "listing webhook endpoints"))?;
    Ok(records
        .iter()
        .filter_map(|r| serde_json::from_str(&r.value).ok())
        .collect())
}

async fn endpoint(
    state: &SharedState,
    tenant: &TenantId,
    id: &str,
) -> Result<(Endpoint, i64), Problem> {
    let key = tenant_key(id).ok_or_else(not_found)?;
    let record = state
        .store
        .record(tenant, ENDPOINT_KIND, &key)
        .await
        .map_err(|e| store_error(&e, "reading a webhook endpoint"))?
        .ok_or_else(not_found)?;
    let endpoint = serde_json::from_str(&record.value)
        .map_err(|_| Problem::from(prepaid_edge::failure::Failure::internal()))?;
    Ok((endpoint, record.version))
}

/// Writes an endpoint and its enabled marker in one unit, compare-and-set on its
/// version.
async fn save(
    state: &SharedState,
    caller: &Principal,
    endpoint: &Endpoint,
    version: Option<i64>,
) -> Result<(), Problem> {
    let key = tenant_key(endpoint.id.clone()).ok_or_else(not_found)?;
    let value = serde_json::to_string(endpoint)
        .map_err(|_| Problem::from(prepaid_edge::failure::Failure::internal()))?;
    let op = Operation::records(caller).put_record(ENDPOINT_KIND, &key, value, version);
    let op = if endpoint.enabled {
        op.delete_record(ENABLED_KIND, &key)
            .put_record(ENABLED_KIND, &key, String::new(), None)
    } else {
        op.delete_record(ENABLED_KIND, &key)
    };
    op.submit(state, "saving a webhook endpoint")
        .await?
        .map(drop)
        .map_err(|r| refusals::refusal(&r))
}

#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "webhooks",
    request_body = CreateEndpointIn,
    responses((status = 201, body = EndpointOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Creates a webhook endpoint; the answer shows its secret, once.
async fn create_endpoint(
    State(state): State<SharedState>,
    Extension(config): Extension<WebhookConfig>,
    caller: Caller<Admin>,
    body: JsonBody<CreateEndpointIn>,
) -> Answer {
    whole_tenant(&caller)?;
    let v = body.value;
    check_url(&v.url, config).map_err(|why| Problem::invalid_field("url", why))?;
    let event_types = check_event_types(v.event_types)?;
    let description = check_description(v.description)?;
    if endpoints(&state, &caller.tenant).await?.len() >= ENDPOINTS_PER_TENANT_MAX {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "webhook_endpoints_exceeded",
            "Too many webhook endpoints",
            format!("a tenant has at most {ENDPOINTS_PER_TENANT_MAX} webhook endpoints"),
        ));
    }
    let now = state.clock.now().as_micros();
    let secret = new_secret();
    let endpoint = Endpoint {
        id: new_uuid().to_string(),
        url: v.url,
        event_types,
        description,
        enabled: v.enabled.unwrap_or(true),
        secrets: vec![Secret {
            secret: secret.clone(),
            until_micros: None,
        }],
        created_at: now,
        updated_at: now,
        failing_since: None,
        disabled_reason: None,
    };
    save(&state, &caller, &endpoint, None).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &EndpointOut::new(&endpoint, Some(&secret)),
        false,
    ))
}

#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "webhooks",
    responses((status = 200, body = EndpointListOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// The tenant's webhook endpoints, without their secrets.
async fn list_endpoints(State(state): State<SharedState>, caller: Caller<Read>) -> Answer {
    whole_tenant(&caller)?;
    let all = endpoints(&state, &caller.tenant).await?;
    let data = all.iter().map(|e| EndpointOut::new(e, None)).collect();
    Ok(json_response(
        StatusCode::OK,
        &EndpointListOut { data },
        false,
    ))
}

#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint id")),
    responses((status = 200, body = EndpointOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// One webhook endpoint, without its secret.
async fn get_endpoint(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
) -> Answer {
    whole_tenant(&caller)?;
    let (endpoint, _) = endpoint(&state, &caller.tenant, &seg.0).await?;
    Ok(json_response(
        StatusCode::OK,
        &EndpointOut::new(&endpoint, None),
        false,
    ))
}

#[utoipa::path(patch, path = "/v1/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint id")),
    request_body = PatchEndpointIn,
    responses((status = 200, body = EndpointOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Changes the members given; enabling an endpoint sends what waited for it.
async fn patch_endpoint(
    State(state): State<SharedState>,
    Extension(config): Extension<WebhookConfig>,
    caller: Caller<Admin>,
    seg: PathSegment,
    body: JsonBody<PatchEndpointIn>,
) -> Answer {
    whole_tenant(&caller)?;
    let (mut endpoint, version) = endpoint(&state, &caller.tenant, &seg.0).await?;
    let v = body.value;
    if let Some(url) = v.url {
        check_url(&url, config).map_err(|why| Problem::invalid_field("url", why))?;
        endpoint.url = url;
    }
    if v.event_types.is_some() {
        endpoint.event_types = check_event_types(v.event_types)?;
    }
    if v.description.is_some() {
        endpoint.description = check_description(v.description)?;
    }
    let enabling = v.enabled == Some(true) && !endpoint.enabled;
    if let Some(enabled) = v.enabled {
        endpoint.enabled = enabled;
        if enabled {
            endpoint.disabled_reason = None;
            endpoint.failing_since = None;
        }
    }
    endpoint.updated_at = state.clock.now().as_micros();
    save(&state, &caller, &endpoint, Some(version)).await?;
    if enabling {
        wake_lanes(&state, &caller.tenant, &endpoint.id).await;
    }
    Ok(json_response(
        StatusCode::OK,
        &EndpointOut::new(&endpoint, None),
        false,
    ))
}

#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint id")),
    responses((status = 204), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Deletes an endpoint; nothing more is sent to it.
async fn delete_endpoint(
    State(state): State<SharedState>,
    caller: Caller<Admin>,
    seg: PathSegment,
) -> Answer {
    whole_tenant(&caller)?;
    let (endpoint, _) = endpoint(&state, &caller.tenant, &seg.0).await?;
    let key = tenant_key(endpoint.id).ok_or_else(not_found)?;
    Operation::records(&caller)
        .delete_record(ENDPOINT_KIND, &key)
        .delete_record(ENABLED_KIND, &key)
        .submit(&state, "deleting a webhook endpoint")
        .await?
        .map_err(|r| refusals::refusal(&r))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint id")),
    request_body(content = RotateSecretIn, description = "May be empty"),
    responses((status = 200, body = EndpointOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Makes a new secret, shown once; the old one keeps signing for the overlap.
async fn rotate_secret(
    State(state): State<SharedState>,
    caller: Caller<Admin>,
    seg: PathSegment,
    body: JsonBody<RotateSecretIn, true>,
) -> Answer {
    whole_tenant(&caller)?;
    let overlap = body.value.overlap_secs.unwrap_or(SECRET_OVERLAP_SECS_MAX);
    if overlap > SECRET_OVERLAP_SECS_MAX {
        return Err(Problem::invalid_field(
            "overlap_secs",
            format_args!("must be at most {SECRET_OVERLAP_SECS_MAX}"),
        ));
    }
    let (mut endpoint, version) = endpoint(&state, &caller.tenant, &seg.0).await?;
    let now = state.clock.now();
    let until = now.plus_micros(micros(overlap.saturating_mul(1000)));
    // Only the current secret overlaps the new one; older ones stop now.
    endpoint.secrets.retain(|s| s.until_micros.is_none());
    for s in &mut endpoint.secrets {
        s.until_micros = Some(until.as_micros());
    }
    let secret = new_secret();
    endpoint.secrets.insert(
        0,
        Secret {
            secret: secret.clone(),
            until_micros: None,
        },
    );
    endpoint.updated_at = now.as_micros();
    save(&state, &caller, &endpoint, Some(version)).await?;
    Ok(json_response(
        StatusCode::OK,
        &EndpointOut::new(&endpoint, Some(&secret)),
        false,
    ))
}

#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint id"),
        ("after" = Option<String>, Query, description = "The cursor of the page before"),
        ("limit" = Option<usize>, Query, description = "At most 100 (default 100)")),
    responses((status = 200, body = DeliveryPageOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// The endpoint's delivery log, oldest first.
async fn list_deliveries(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
    query: Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    whole_tenant(&caller)?;
    let Query(query) = query.map_err(|e| Problem::invalid_request(e.body_text()))?;
    let (endpoint, _) = endpoint(&state, &caller.tenant, &seg.0).await?;
    let limit = query.limit.unwrap_or(DELIVERIES_PAGE_MAX);
    if limit == 0 || limit > DELIVERIES_PAGE_MAX {
        return Err(Problem::invalid_field(
            "limit",
            format_args!("must be 1 to {DELIVERIES_PAGE_MAX}"),
        ));
    }
    let prefix = format!("{} ", endpoint.id);
    let after = match &query.after {
        Some(after) => format!("{prefix}{after}"),
        None => prefix.clone(),
    };
    let after = tenant_key(after).ok_or_else(|| Problem::invalid_field("after", "bad cursor"))?;
    let records = state
        .store
        .records(&caller.tenant, DELIVERY_KIND, Some(&after), limit + 1)
        .await
        .map_err(|e| store_error(&e, "listing webhook deliveries"))?;
    let mine: Vec<(String, Delivery)> = records
        .into_iter()
        .filter_map(|r| {
            let id = r.key.as_str().strip_prefix(&prefix)?.to_owned();
            Some((id, serde_json::from_str(&r.value).ok()?))
        })
        .collect();
    let more = mine.len() > limit;
    let page = &mine[..mine.len().min(limit)];
    let next_cursor = more
        .then(|| page.last().map(|(id, _)| id.clone()))
        .flatten();
    let data = page.iter().map(|(id, d)| DeliveryOut::new(id, d)).collect();
    Ok(json_response(
        StatusCode::OK,
        &DeliveryPageOut { data, next_cursor },
        false,
    ))
}

#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/retry",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint id"),
        ("delivery_id" = String, Path, description = "The delivery id")),
    responses((status = 202, body = DeliveryOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Sends a delivery again now (a pending one at once, a finished one after what its
/// wallet's lane holds).
async fn retry_delivery(
    State(state): State<SharedState>,
    caller: Caller<Admin>,
    axum::extract::Path((id, delivery_id)): axum::extract::Path<(String, String)>,
) -> Answer {
    whole_tenant(&caller)?;
    let (endpoint, _) = endpoint(&state, &caller.tenant, &id).await?;
    let key =
        tenant_key(format!("{} {delivery_id}", endpoint.id)).ok_or_else(delivery_not_found)?;
    let record = state
        .store
        .record(&caller.tenant, DELIVERY_KIND, &key)
        .await
        .map_err(|e| store_error(&e, "reading a webhook delivery"))?
        .ok_or_else(delivery_not_found)?;
    let delivery = requeue(&state, &caller.tenant, &endpoint.id, &record)
        .await
        .map_err(|e| store_error(&e, "queueing a webhook delivery again"))?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &DeliveryOut::new(&delivery_id, &delivery),
        false,
    ))
}

#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint id")),
    request_body = ReplayIn,
    responses((status = 202, body = ReplayOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Sends again every finished delivery of an event made in `[from, to)`, at most 1000.
async fn replay(
    State(state): State<SharedState>,
    caller: Caller<Admin>,
    seg: PathSegment,
    body: JsonBody<ReplayIn>,
) -> Answer {
    whole_tenant(&caller)?;
    let (endpoint, _) = endpoint(&state, &caller.tenant, &seg.0).await?;
    let (from, to) = (body.value.from.0.as_micros(), body.value.to.0.as_micros());
    if from >= to {
        return Err(Problem::invalid_field("to", "must be after from"));
    }
    let prefix = format!("{} ", endpoint.id);
    let mut after = tenant_key(format!("{prefix}{from:020}")).ok_or_else(not_found)?;
    let mut queued = 0;
    'pages: loop {
        let records = state
            .store
            .records(&caller.tenant, DELIVERY_KIND, Some(&after), PAGE_SIZE_MAX)
            .await
            .map_err(|e| store_error(&e, "listing webhook deliveries"))?;
        let full = records.len() == PAGE_SIZE_MAX;
        for record in &records {
            if !record.key.as_str().starts_with(&prefix) {
                break 'pages;
            }
            let Ok(delivery) = serde_json::from_str::<Delivery>(&record.value) else {
                continue;
            };
            if delivery.created_at >= to {
                break 'pages;
            }
            if delivery.state == "pending" || delivery.created_at < from {
                continue;
            }
            if queued == REPLAY_DELIVERIES_MAX {
                break 'pages;
            }
            requeue(&state, &caller.tenant, &endpoint.id, record)
                .await
                .map_err(|e| store_error(&e, "queueing a webhook delivery again"))?;
            queued += 1;
        }
        match records.last() {
            Some(last) if full => after = last.key.clone(),
            _ => break,
        }
    }
    Ok(json_response(
        StatusCode::ACCEPTED,
        &ReplayOut { queued },
        false,
    ))
}

/// Queues a logged delivery again with a fresh schedule: a pending one is due now; a
/// finished one joins the end of its lane.
async fn requeue(
    state: &SharedState,
    tenant: &TenantId,
    endpoint: &str,
    record: &Record,
) -> Result<Delivery, StoreError> {
    let mut delivery: Delivery = serde_json::from_str(&record.value)
        .map_err(|_| StoreError::internal("a webhook delivery does not decode"))?;
    let now = state.clock.now();
    if delivery.state != "pending" {
        // After every ordinary key of the lane ('~' sorts after digits), in the order
        // of the retries.
        let pending = format!("{endpoint} {} ~{:020}", delivery.wallet, now.as_micros());
        let Some(pending_key) = tenant_key(pending) else {
            return Err(StoreError::internal("a pending key is too long"));
        };
        state
            .store
            .put_record(
                tenant,
                PENDING_KIND,
                &pending_key,
                record.key.as_str(),
                None,
                now,
            )
            .await?;
        delivery.pending_key = Some(pending_key.into_string());
        delivery.state = "pending".to_owned();
    }
    delivery.schedule_from = delivery.attempts;
    delivery.next_attempt_micros = Some(now.as_micros());
    let value = serde_json::to_string(&delivery).unwrap_or_default();
    state
        .store
        .put_record(
            tenant,
            DELIVERY_KIND,
            &record.key,
            &value,
            Some(record.version),
            now,
        )
        .await?;
    wake_lane(state, tenant, endpoint, &delivery.wallet).await;
    Ok(delivery)
}

// ---------------------------------------------------------------------------------
// Routes and documentation.

prepaid_edge::routes! {
    rows, pub route_table;
    "/webhook-endpoints" => post(create_endpoint): Admin, get(list_endpoints): Read;
    "/webhook-endpoints/{id}" => get(get_endpoint): Read, patch(patch_endpoint): Admin,
        delete(delete_endpoint): Admin;
    "/webhook-endpoints/{id}/rotate-secret" => post(rotate_secret): Admin;
    "/webhook-endpoints/{id}/deliveries" => get(list_deliveries): Read;
    "/webhook-endpoints/{id}/deliveries/{delivery_id}/retry" => post(retry_delivery): Admin;
    "/webhook-endpoints/{id}/replay" => post(replay): Admin;
}

/// The routes of the webhook endpoints, merged into the native router.
pub fn rows_for_router() -> Vec<(&'static str, axum::routing::MethodRouter<SharedState>)> {
    rows()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create_endpoint, list_endpoints, get_endpoint, patch_endpoint, delete_endpoint,
        rotate_secret, list_deliveries, retry_delivery, replay),
    tags((name = "webhooks"))
)]
pub struct WebhooksApi;

// ---------------------------------------------------------------------------------
// The worker.

/// Makes sure the lane's job exists and is due now.
async fn wake_lane(state: &SharedState, tenant: &TenantId, endpoint: &str, wallet: &str) {
    let Some(id) = tenant_key(format!("{endpoint} {wallet}")) else {
        return;
    };
    let payload = json!({"endpoint": endpoint, "wallet": wallet}).to_string();
    let now = state.clock.now();
    let result = async {
        if !state
            .store
            .enqueue_job(tenant, LANE_QUEUE, &id, &payload, now)
            .await?
        {
            state.store.defer_job(tenant, LANE_QUEUE, &id, now).await?;
        }
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "waking a webhook lane failed; it runs when its lease ends");
    }
}

/// Wakes every lane of the endpoint with something pending (an endpoint enabled again).
async fn wake_lanes(state: &SharedState, tenant: &TenantId, endpoint: &str) {
    let prefix = format!("{endpoint} ");
    let Some(mut after) = tenant_key(prefix.clone()) else {
        return;
    };
    let mut woken = std::collections::BTreeSet::new();
    loop {
        let Ok(records) = state
            .store
            .records(tenant, PENDING_KIND, Some(&after), PAGE_SIZE_MAX)
            .await
        else {
            return;
        };
        for r in &records {
            let Some(rest) = r.key.as_str().strip_prefix(&prefix) else {
                return;
            };
            if let Some((wallet, _)) = rest.rsplit_once(' ')
                && woken.insert(wallet.to_owned())
            {
                wake_lane(state, tenant, endpoint, wallet).await;
            }
        }
        match records.last() {
            Some(last) if records.len() == PAGE_SIZE_MAX => after = last.key.clone(),
            _ => return,
        }
    }
}

/// Fans outboxed events out and delivers due lanes until `stop` turns true.
pub async fn run(state: SharedState, config: WebhookConfig, stop: watch::Receiver<bool>) {
    let mut ticker = Ticker::new(Duration::from_millis(WORKER_INTERVAL_MS), stop);
    let (mut outbox_failing, mut lanes_failing) = (false, false);
    while ticker.tick().await {
        let fanning = fan_out_round(&state, &mut outbox_failing);
        if !ticker.unless_stopped(fanning).await {
            return;
        }
        let lanes = jobs::drain(
            &state,
            LANE_QUEUE,
            LANE_LEASE_MS,
            "webhook deliveries",
            &mut lanes_failing,
            move |state, job| run_lane(state, config, job),
        );
        if !ticker.unless_stopped(lanes).await {
            return;
        }
    }
}

/// The body of an event: `{id, type, timestamp, data}` with `data` in the native API's
/// shapes.
async fn render(
    state: &SharedState,
    tenant: &TenantId,
    id: &str,
    facts: &EventFacts,
) -> Result<Value, StoreError> {
    let mut data = serde_json::Map::new();
    data.insert("wallet_id".into(), json!(facts.wallet));
    data.insert("customer_id".into(), json!(facts.customer));
    data.insert("balance_after".into(), json!(facts.balance_after));
    if let Some(available) = facts.available_after {
        data.insert("available_after".into(), json!(available));
    }
    if let Some(m) = facts
        .mutation
        .as_deref()
        .and_then(|m| uuid::Uuid::try_parse(m).ok())
        && let Some(m) = state.store.mutation(tenant, MutationId(m)).await?
    {
        data.insert(
            "mutation".into(),
            serde_json::to_value(prepaid_edge::wire::MutationOut::from(&m)).unwrap_or_default(),
        );
    }
    if let Some(h) = facts
        .hold
        .as_deref()
        .and_then(|h| uuid::Uuid::try_parse(h).ok())
        && let Some(h) = state.store.hold(tenant, HoldId(h)).await?
    {
        data.insert(
            "hold".into(),
            serde_json::to_value(crate::types::HoldOut::from(&h)).unwrap_or_default(),
        );
    }
    if let Some(grant) = &facts.grant {
        data.insert("grant_id".into(), json!(grant));
    }
    if let Some(threshold) = facts.threshold {
        data.insert("threshold".into(), json!(threshold));
    }
    if let Some((n, amount)) = facts.auto_topup {
        let mut top_up = serde_json::Map::new();
        top_up.insert("number".into(), json!(n));
        top_up.insert("amount".into(), json!(amount));
        if let Some(reason) = &facts.reason {
            top_up.insert("failure_reason".into(), json!(reason));
        }
        data.insert("auto_topup".into(), Value::Object(top_up));
    }
    Ok(json!({
        "id": id,
        "type": facts.event_type.as_str(),
        "timestamp": prepaid_edge::time::format(Timestamp::from_micros(facts.at_micros)),
        "data": Value::Object(data),
    }))
}

/// Fans one outboxed event out to the endpoints subscribed to its type. Every write is
/// keyed by the event, so fanning out again after a crash adds nothing twice.
async fn fan_out_round(state: &SharedState, failing: &mut bool) {
    for _ in 0..jobs::CLAIMS_PER_ROUND_MAX {
        let now = state.clock.now();
        let lease_until = now.plus_micros(micros(OUTBOX_LEASE_MS));
        let claimed = match state
            .store
            .claim_jobs(EVENT_QUEUE, now, lease_until, JOB_CLAIM_MAX)
            .await
        {
            Ok(claimed) => {
                if std::mem::take(failing) {
                    tracing::info!("claiming webhook events works again");
                }
                claimed
            }
            Err(e) => {
                if !std::mem::replace(failing, true) {
                    tracing::warn!(error = %e, "claiming webhook events failed; retrying every round");
                }
                return;
            }
        };
        let count = claimed.len();
        // Each wallet's events in its order, the wallets side by side.
        let mut wallets: BTreeMap<(TenantId, String), Vec<(EventFacts, Job)>> = BTreeMap::new();
        for job in claimed {
            match EventFacts::from_json(&job.payload) {
                Some(facts) => wallets
                    .entry((job.tenant.clone(), facts.wallet.clone()))
                    .or_default()
                    .push((facts, job)),
                None => {
                    tracing::error!(job = %job.id, tenant = %job.tenant, "dropping a corrupt webhook event");
                    finish(state, &job).await;
                }
            }
        }
        let mut running = tokio::task::JoinSet::new();
        for (_, mut events) in wallets {
            events.sort_by_key(|(facts, _)| facts.sequence);
            let state = state.clone();
            running.spawn(async move {
                let mut held_back = false;
                for (facts, job) in events {
                    if held_back {
                        defer(&state, &job, FAN_OUT_RETRY_MS).await;
                    } else if !fan_out_in_order(&state, &job, &facts).await {
                        held_back = true;
                    }
                }
            });
        }
        while running.join_next().await.is_some() {}
        if count < JOB_CLAIM_MAX {
            return;
        }
    }
}

async fn defer(state: &SharedState, job: &Job, wait_ms: u64) {
    let due = state.clock.now().plus_micros(micros(wait_ms));
    if let Err(e) = state
        .store
        .defer_job(&job.tenant, job.queue, &job.id, due)
        .await
    {
        tracing::warn!(error = %e, "deferring a webhook job failed; its lease will end");
    }
}

/// The wallet's last event fanned out, as its record of [`FANNED_KIND`] says.
fn fanned(record: Option<&Record>) -> Option<((i64, u32), bool)> {
    let mut parts = record?.value.split(' ');
    let batch = parts.next()?.parse().ok()?;
    let place = parts.next()?.parse().ok()?;
    let last = parts.next()? == "last";
    Some(((batch, place), last))
}

/// Fans one event out once the wallet's event before it is (another instance may hold
/// it for a moment); `false` when it has to wait, which holds back the wallet's later
/// events. An event whose predecessor has not come for [`FAN_OUT_WAIT_MS_MAX`] goes
/// out anyway (logged), so a lost one cannot stop its wallet.
async fn fan_out_in_order(state: &SharedState, job: &Job, facts: &EventFacts) -> bool {
    let Some(key) = tenant_key(facts.wallet.clone()) else {
        finish(state, job).await;
        return true;
    };
    let record = match state.store.record(&job.tenant, FANNED_KIND, &key).await {
        Ok(record) => record,
        Err(e) => {
            tracing::warn!(error = %e, "reading how far webhook events went failed; retrying");
            defer(state, job, 1000).await;
            return false;
        }
    };
    let before = fanned(record.as_ref());
    let again = before.is_some_and(|(sequence, _)| sequence >= facts.sequence);
    if !again && !facts.follows(before) {
        let age_ms = state
            .clock
            .now()
            .as_micros()
            .saturating_sub(facts.at_micros)
            / 1000;
        if u64::try_from(age_ms).unwrap_or(0) < FAN_OUT_WAIT_MS_MAX {
            defer(state, job, FAN_OUT_RETRY_MS).await;
            return false;
        }
        tracing::warn!(tenant = %job.tenant, event = %job.id,
            "the webhook event before this one never came; sending this one anyway");
    }
    if let Err(e) = fan_out_event(state, job, facts).await {
        tracing::warn!(error = %e, "fanning out a webhook event failed; retrying");
        defer(state, job, 1000).await;
        return false;
    }
    if !again {
        let (batch, place) = facts.sequence;
        let value = format!(
            "{batch} {place} {}",
            if facts.last { "last" } else { "more" }
        );
        // A lost race means another worker fanned this event out too (at least once).
        let written = state
            .store
            .put_record(
                &job.tenant,
                FANNED_KIND,
                &key,
                &value,
                record.map(|r| r.version),
                state.clock.now(),
            )
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "noting a fanned-out webhook event failed; retrying");
            defer(state, job, 1000).await;
            return false;
        }
    }
    finish(state, job).await;
    true
}

async fn fan_out_event(
    state: &SharedState,
    job: &Job,
    facts: &EventFacts,
) -> Result<(), StoreError> {
    let tenant = &job.tenant;
    let records = state
        .store
        .records(tenant, ENDPOINT_KIND, None, PAGE_SIZE_MAX)
        .await?;
    let endpoints: Vec<Endpoint> = records
        .iter()
        .filter_map(|r| serde_json::from_str::<Endpoint>(&r.value).ok())
        .filter(|e| e.enabled && e.subscribed(facts.event_type))
        .collect();
    if endpoints.is_empty() {
        return Ok(());
    }
    let body = render(state, tenant, job.id.as_str(), facts)
        .await?
        .to_string();
    let now = state.clock.now();
    for endpoint in endpoints {
        let log_key = format!("{} {:020} {}", endpoint.id, facts.at_micros, job.id);
        let pending_key = format!("{} {} {}", endpoint.id, facts.wallet, facts.order_key());
        let (Some(log_key), Some(pending_key)) = (tenant_key(log_key), tenant_key(pending_key))
        else {
            tracing::error!(%tenant, event = %job.id, "a webhook delivery key is too long");
            continue;
        };
        let too_large = body.len() > PAYLOAD_BYTES_MAX;
        let delivery = Delivery {
            event_id: job.id.to_string(),
            event_type: facts.event_type.as_str().to_owned(),
            wallet: facts.wallet.clone(),
            body: if too_large {
                String::new()
            } else {
                body.clone()
            },
            state: if too_large { "too_large" } else { "pending" }.to_owned(),
            attempts: 0,
            schedule_from: 0,
            status_code: None,
            response_ms: None,
            next_attempt_micros: (!too_large).then_some(now.as_micros()),
            created_at: facts.at_micros,
            pending_key: (!too_large).then(|| pending_key.to_string()),
        };
        let value = serde_json::to_string(&delivery).unwrap_or_default();
        state
            .store
            .put_record(tenant, DELIVERY_KIND, &log_key, &value, None, now)
            .await?;
        if too_large {
            tracing::error!(%tenant, event = %job.id, bytes = body.len(),
                "a webhook event is too large to deliver");
            continue;
        }
        state
            .store
            .put_record(
                tenant,
                PENDING_KIND,
                &pending_key,
                log_key.as_str(),
                None,
                now,
            )
            .await?;
        let lane = tenant_key(format!("{} {}", endpoint.id, facts.wallet));
        if let Some(lane) = lane {
            let payload = json!({"endpoint": endpoint.id, "wallet": facts.wallet}).to_string();
            state
                .store
                .enqueue_job(tenant, LANE_QUEUE, &lane, &payload, now)
                .await?;
        }
    }
    Ok(())
}

async fn finish(state: &SharedState, job: &Job) {
    if let Err(e) = state
        .store
        .finish_job(&job.tenant, job.queue, &job.id)
        .await
    {
        tracing::warn!(error = %e, job = %job.id, "finishing a webhook job failed; it runs again");
    }
}

/// What a lane's run came to.
enum LaneEnd {
    /// Nothing is pending.
    Empty,
    /// The head is due at this time.
    Wait(Timestamp),
    /// The lane's endpoint is gone or disabled.
    Closed,
}

/// Delivers the lane's pending events in order until one fails, none is left, or the
/// claim's bound is reached.
async fn run_lane(state: SharedState, config: WebhookConfig, job: Job) {
    let lane: Value = serde_json::from_str(&job.payload).unwrap_or_default();
    let (Some(endpoint_id), Some(wallet)) = (lane["endpoint"].as_str(), lane["wallet"].as_str())
    else {
        tracing::error!(job = %job.id, "dropping a corrupt webhook lane");
        finish(&state, &job).await;
        return;
    };
    let started = Instant::now();
    let mut end = LaneEnd::Wait(state.clock.now());
    for _ in 0..LANE_DELIVERIES_PER_CLAIM_MAX {
        if started.elapsed() > Duration::from_millis(LANE_LEASE_MS / 2) {
            break;
        }
        match deliver_head(&state, config, &job.tenant, endpoint_id, wallet).await {
            Ok(Some(next)) => {
                end = next;
                if !matches!(end, LaneEnd::Wait(at) if at <= state.clock.now()) {
                    break;
                }
            }
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "a webhook lane failed; retrying");
                end = LaneEnd::Wait(state.clock.now().plus_micros(micros(1000)));
                break;
            }
        }
    }
    match end {
        LaneEnd::Wait(at) => {
            if let Err(e) = state
                .store
                .defer_job(&job.tenant, LANE_QUEUE, &job.id, at)
                .await
            {
                tracing::warn!(error = %e, "deferring a webhook lane failed; its lease will end");
            }
        }
        LaneEnd::Empty | LaneEnd::Closed => {
            finish(&state, &job).await;
            // A delivery fanned out while the lane was finishing found its job still
            // there and queued none: look once more, now that it is gone.
            if matches!(end, LaneEnd::Empty)
                && matches!(
                    head(&state, &job.tenant, endpoint_id, wallet).await,
                    Ok(Some(_))
                )
            {
                wake_lane(&state, &job.tenant, endpoint_id, wallet).await;
            }
        }
    }
}

/// The lane's first pending record.
async fn head(
    state: &SharedState,
    tenant: &TenantId,
    endpoint: &str,
    wallet: &str,
) -> Result<Option<Record>, StoreError> {
    let prefix = format!("{endpoint} {wallet} ");
    let Some(after) = tenant_key(prefix.clone()) else {
        return Ok(None);
    };
    let found = state
        .store
        .records(tenant, PENDING_KIND, Some(&after), 1)
        .await?;
    Ok(found
        .into_iter()
        .next()
        .filter(|r| r.key.as_str().starts_with(&prefix)))
}

/// Offers the lane's head once if it is due. `Ok(None)` when it was delivered or
/// given up (go on with the next).
async fn deliver_head(
    state: &SharedState,
    config: WebhookConfig,
    tenant: &TenantId,
    endpoint_id: &str,
    wallet: &str,
) -> Result<Option<LaneEnd>, StoreError> {
    let Some(pending) = head(state, tenant, endpoint_id, wallet).await? else {
        return Ok(Some(LaneEnd::Empty));
    };
    let Some(endpoint_key) = tenant_key(endpoint_id) else {
        return Ok(Some(LaneEnd::Closed));
    };
    let Some(endpoint_record) = state
        .store
        .record(tenant, ENDPOINT_KIND, &endpoint_key)
        .await?
    else {
        // The endpoint was deleted: what waited for it goes nowhere.
        state
            .store
            .delete_record(tenant, PENDING_KIND, &pending.key)
            .await?;
        return Ok(None);
    };
    let Ok(endpoint) = serde_json::from_str::<Endpoint>(&endpoint_record.value) else {
        return Ok(Some(LaneEnd::Closed));
    };
    if !endpoint.enabled {
        return Ok(Some(LaneEnd::Closed));
    }
    let log_key = tenant_key(pending.value.clone());
    let log = match &log_key {
        Some(key) => state.store.record(tenant, DELIVERY_KIND, key).await?,
        None => None,
    };
    let (Some(log_key), Some(log)) = (log_key, log) else {
        state
            .store
            .delete_record(tenant, PENDING_KIND, &pending.key)
            .await?;
        return Ok(None);
    };
    let Ok(mut delivery) = serde_json::from_str::<Delivery>(&log.value) else {
        state
            .store
            .delete_record(tenant, PENDING_KIND, &pending.key)
            .await?;
        return Ok(None);
    };
    let now = state.clock.now();
    if let Some(due) = delivery.next_attempt_micros
        && due > now.as_micros()
    {
        return Ok(Some(LaneEnd::Wait(Timestamp::from_micros(due))));
    }
    let started = Instant::now();
    let outcome = post(config, &endpoint, &delivery, now).await;
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let now = state.clock.now();
    delivery.attempts = delivery.attempts.saturating_add(1);
    delivery.response_ms = Some(elapsed);
    let delivered = match &outcome {
        Ok(status) => {
            delivery.status_code = Some(*status);
            (200..300).contains(status)
        }
        Err(why) => {
            delivery.status_code = None;
            tracing::info!(%tenant, endpoint = endpoint_id, event = %delivery.event_id, why = %why,
                "a webhook delivery failed");
            false
        }
    };
    let round = delivery.attempts.saturating_sub(delivery.schedule_from);
    let end = if delivered {
        delivery.state = "delivered".to_owned();
        delivery.next_attempt_micros = None;
        None
    } else if round >= DELIVERY_ATTEMPTS_MAX {
        tracing::warn!(%tenant, endpoint = endpoint_id, event = %delivery.event_id,
            attempts = delivery.attempts, "giving up a webhook delivery");
        delivery.state = "failed".to_owned();
        delivery.next_attempt_micros = None;
        None
    } else {
        let due = now.plus_micros(micros(retry_wait_ms(round, config)));
        delivery.next_attempt_micros = Some(due.as_micros());
        Some(LaneEnd::Wait(due))
    };
    if end.is_none() {
        delivery.pending_key = None;
    }
    let value = serde_json::to_string(&delivery).unwrap_or_default();
    state
        .store
        .put_record(
            tenant,
            DELIVERY_KIND,
            &log_key,
            &value,
            Some(log.version),
            now,
        )
        .await?;
    if end.is_none() {
        state
            .store
            .delete_record(tenant, PENDING_KIND, &pending.key)
            .await?;
    }
    note_health(state, tenant, &endpoint_key, delivered, now).await?;
    Ok(end)
}

/// Keeps the endpoint's `failing_since`, and disables an endpoint that failed for
/// [`FAILING_DISABLE_SECS`].
async fn note_health(
    state: &SharedState,
    tenant: &TenantId,
    key: &RecordKey,
    delivered: bool,
    now: Timestamp,
) -> Result<(), StoreError> {
    // A lost race with another change of the endpoint is tried again at the next
    // delivery; health is advice, not money.
    let Some(record) = state.store.record(tenant, ENDPOINT_KIND, key).await? else {
        return Ok(());
    };
    let Ok(mut endpoint) = serde_json::from_str::<Endpoint>(&record.value) else {
        return Ok(());
    };
    let mut disable = false;
    match (delivered, endpoint.failing_since) {
        (true, None) => return Ok(()),
        (true, Some(_)) => endpoint.failing_since = None,
        (false, None) => endpoint.failing_since = Some(now.as_micros()),
        (false, Some(since)) => {
            if now.as_micros().saturating_sub(since) < FAILING_DISABLE_SECS * 1_000_000 {
                return Ok(());
            }
            disable = true;
        }
    }
    if disable {
        endpoint.enabled = false;
        endpoint.disabled_reason = Some("failing for 5 days".to_owned());
        tracing::warn!(%tenant, endpoint = %endpoint.id, url = %endpoint.url,
            "endpoint.disabled: a webhook endpoint failed every delivery for 5 days");
        let log_key = tenant_key(format!(
            "{} {:020} endpoint.disabled:{}",
            endpoint.id,
            now.as_micros(),
            endpoint.id
        ));
        if let Some(log_key) = log_key {
            let entry = Delivery {
                event_id: format!("endpoint.disabled:{}", endpoint.id),
                event_type: EventType::EndpointDisabled.as_str().to_owned(),
                wallet: String::new(),
                body: String::new(),
                state: "disabled".to_owned(),
                attempts: 0,
                schedule_from: 0,
                status_code: None,
                response_ms: None,
                next_attempt_micros: None,
                created_at: now.as_micros(),
                pending_key: None,
            };
            let value = serde_json::to_string(&entry).unwrap_or_default();
            state
                .store
                .put_record(tenant, DELIVERY_KIND, &log_key, &value, None, now)
                .await?;
        }
    }
    endpoint.updated_at = now.as_micros();
    let value = serde_json::to_string(&endpoint).unwrap_or_default();
    let saved = state
        .store
        .put_record(
            tenant,
            ENDPOINT_KIND,
            key,
            &value,
            Some(record.version),
            now,
        )
        .await?;
    if disable && saved.is_some() {
        state.store.delete_record(tenant, ENABLED_KIND, key).await?;
    }
    Ok(())
}

/// The wait after the `round`-th failed attempt of a schedule: [`RETRY_SCHEDULE_SECS`]
/// with up to 10% jitter either way, capped by the operator's `retry_delay_ms_max`.
fn retry_wait_ms(round: u32, config: WebhookConfig) -> u64 {
    use rand::Rng;
    let ix = usize::try_from(round.saturating_sub(1)).unwrap_or(usize::MAX);
    let secs = RETRY_SCHEDULE_SECS
        .get(ix)
        .copied()
        .unwrap_or(RETRY_SCHEDULE_SECS[RETRY_SCHEDULE_SECS.len() - 1]);
    let base = secs.saturating_mul(1000);
    let jitter = base / 10;
    let wait = base - jitter + rand::rng().random_range(0..=2 * jitter);
    config.retry_delay_ms_max.map_or(wait, |max| wait.min(max))
}

/// The signature header of `body` under every signing secret.
fn signatures(endpoint: &Endpoint, id: &str, timestamp: i64, body: &str, now: Timestamp) -> String {
    endpoint
        .signing_secrets(now)
        .filter_map(|secret| {
            standardwebhooks::Webhook::new(secret)
                .and_then(|w| w.sign(id, timestamp, body.as_bytes()))
                .ok()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends one attempt: the status of the answer, or why there was none.
async fn post(
    config: WebhookConfig,
    endpoint: &Endpoint,
    delivery: &Delivery,
    now: Timestamp,
) -> Result<u16, String> {
    let url = url::Url::parse(&endpoint.url).map_err(|e| e.to_string())?;
    let host = url.host_str().ok_or("no host")?.to_owned();
    let port = url.port_or_known_default().ok_or("no port")?;
    let addresses: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        _ => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
    let allowed: Vec<SocketAddr> = addresses
        .into_iter()
        .filter(|a| config.allow_private_targets || !forbidden_ip(a.ip()))
        .collect();
    let Some(target) = allowed.first().copied() else {
        return Err(format!("{host} resolves to no address a webhook may reach"));
    };
    // The connection goes to the address checked, whatever the name resolves to next.
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_millis(DELIVERY_TIMEOUT_MS))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("prepaid/", env!("CARGO_PKG_VERSION")));
    if matches!(url.host(), Some(url::Host::Domain(_))) {
        builder = builder.resolve(&host, target);
    }
    let http = builder.build().map_err(|e| e.to_string())?;
    let timestamp = now.as_micros() / 1_000_000;
    let signature = signatures(endpoint, &delivery.event_id, timestamp, &delivery.body, now);
    let answer = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body.clone())
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else {
                "could not be reached".to_owned()
            }
        })?;
    Ok(answer.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let strict = WebhookConfig::default();
        let open = WebhookConfig {
            allow_private_targets: true,
            ..WebhookConfig::default()
        };
        assert!(check_url("https://example.com/hook", strict).is_ok());
        for refused in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(check_url(refused, strict).is_err(), "{refused}");
            assert!(check_url(refused, open).is_ok(), "{refused}");
        }
        assert!(check_url("ftp://example.com/", open).is_err());
        assert!(check_url("not a url", open).is_err());
        let base = "https://example.com/";
        let at = format!("{base}{}", "a".repeat(URL_LEN_MAX - base.len()));
        assert!(check_url(&at, strict).is_ok());
        assert!(check_url(&format!("{at}a"), strict).is_err());
    }

    #[test]
    fn event_types_are_bounded_and_known() {
        let all: Vec<String> = EventType::ALL
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        assert_eq!(all.len(), EVENT_TYPES_PER_ENDPOINT_MAX);
        assert!(check_event_types(Some(all.clone())).is_ok());
        let mut over = all.clone();
        over.push("mutation.created".to_owned());
        assert!(check_event_types(Some(over)).is_err());
        assert!(check_event_types(Some(vec!["nope".to_owned()])).is_err());
        assert!(check_event_types(None).unwrap().is_empty());
    }

    #[test]
    fn the_schedule_lasts_about_three_days() {
        let total: u64 = RETRY_SCHEDULE_SECS.iter().sum();
        assert!((2 * 86_400..4 * 86_400).contains(&total), "{total}");
        let config = WebhookConfig::default();
        for round in 1..DELIVERY_ATTEMPTS_MAX {
            let base = RETRY_SCHEDULE_SECS[round as usize - 1] * 1000;
            let wait = retry_wait_ms(round, config);
            assert!(wait >= base - base / 10 && wait <= base + base / 10);
        }
        let capped = WebhookConfig {
            retry_delay_ms_max: Some(50),
            ..config
        };
        assert_eq!(retry_wait_ms(3, capped), 50);
    }

    #[test]
    fn secrets_sign_as_the_standard_says() {
        let secret = new_secret();
        let key = secret.strip_prefix("whsec_").unwrap();
        assert!(
            base64::engine::general_purpose::STANDARD
                .decode(key)
                .unwrap()
                .len()
                >= 24
        );
        let endpoint = Endpoint {
            id: "e".into(),
            url: "https://example.com/".into(),
            event_types: Vec::new(),
            description: String::new(),
            enabled: true,
            secrets: vec![
                Secret {
                    secret: secret.clone(),
                    until_micros: None,
                },
                Secret {
                    secret: new_secret(),
                    until_micros: Some(10),
                },
            ],
            created_at: 0,
            updated_at: 0,
            failing_since: None,
            disabled_reason: None,
        };
        let both = signatures(&endpoint, "msg", 1, "{}", Timestamp::from_micros(5));
        assert_eq!(both.split(' ').count(), 2);
        let one = signatures(&endpoint, "msg", 1, "{}", Timestamp::from_micros(10));
        assert!(one.starts_with("v1,") && !one.contains(' '));
    }
}
