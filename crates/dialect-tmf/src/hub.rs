//! TMF654 event notifications: the listener registrations of `/hub` and the durable
//! outbox that delivers events to them.
//!
//! `POST /hub {callback, query?}` registers a listener of the caller's tenant (201, the
//! `EventSubscription` and its `Location`); `DELETE /hub/{id}` removes it (204; 404 when
//! there is none). Registrations are records of kind [`HUB_KIND`] keyed by their id (a
//! UUID v7), one per listener. Both need a key with the write scope that is not
//! restricted to one customer (a listener hears about every customer of the tenant).
//!
//! # Events
//!
//! An action's `Create` or `Cancel` event is a job of the outbox queue
//! [`OUTBOX_QUEUE`], linked to the action's own unit ([`outboxed`]), so the event exists
//! exactly when the change does. The hub worker renders the resource from the ledger
//! (as committed) and fans the event out to the listeners. A refused action's `Failure`
//! event describes no change and is fanned out at once ([`publish`]). The event is the
//! spec's envelope:
//!
//! ```json
//! {"eventId": "<uuid>", "eventTime": "<RFC 3339>", "eventType": "TopupBalanceCreateEvent",
//!  "event": {"topupBalance": {...}}}
//! ```
//!
//! where the member of `event` is the resource's name (`topupBalance`, `adjustBalance`,
//! `transferBalance`, `reserveBalance`).
//!
//! # Query
//!
//! A listener's `query` selects the events it receives; without one (or an empty one) it
//! receives all. The grammar:
//!
//! ```text
//! query = [ "?" ] term *( "&" term )
//! term  = name "=" value *( "," value )
//! name  = "eventType" / "event." member *( "." member )
//! value = 1*( any character but "&" and "," )
//! ```
//!
//! Spaces around names and values are ignored. An event matches when every term
//! matches (AND); a term matches when the event has one of its values (OR).
//! `eventType` compares the event's type (the values must be [`EVENT_TYPES`]), so
//! `eventType=TopupBalanceCreateEvent,TopupBalanceFailureEvent` selects two types. A
//! path names a member of the envelope, e.g. `event.topupBalance.bucket.id=w1`: it
//! matches when that member is a string equal to a value, or a number or boolean whose
//! JSON text is a value. Values are taken literally (no percent-decoding). A query is
//! at most [`QUERY_LEN_MAX`] bytes of at most [`QUERY_TERMS_MAX`] terms; a bad query
//! is refused with 400 at registration.
//!
//! # Delivery
//!
//! Fanning out enqueues one job per matching listener in the queue [`HUB_QUEUE`], with
//! the deterministic id `<listener id>:<eventId>` and the event and callback as payload
//! (the outbox job's id is the event id, so fanning out again after a crash queues each
//! pending delivery once). Nothing waits for a delivery. The worker ([`run`],
//! every [`HUB_INTERVAL_MS`] on every instance) claims due jobs, checks that the listener
//! is still registered (a deleted listener receives nothing more, retries included) and
//! POSTs the event as JSON to the callback, with a timeout of [`DELIVERY_TIMEOUT_MS`] and
//! no redirects. A 2xx answer delivers it. Anything else is retried after an exponential
//! backoff, [`BACKOFF_BASE_MS`] doubling up to [`BACKOFF_MS_MAX`]; after
//! [`DELIVERY_ATTEMPTS_MAX`] attempts the event is dropped and logged.
//!
//! Delivery is at least once: a worker that dies mid-delivery leaves the job to be
//! claimed again when its lease ([`DELIVERY_LEASE_MS`]) ends, so a listener may receive
//! an event twice and should deduplicate on `eventId`. Events of one listener may arrive
//! out of order (retries overtake). A crash delays events by a lease
//! ([`OUTBOX_LEASE_MS`], [`DELIVERY_LEASE_MS`]) and loses none. An operation queues its
//! event only when the tenant has a listener, so a listener registered while it runs may
//! miss that one. An event larger than a job payload
//! ([`prepaid_store::RECORD_VALUE_BYTES_MAX`]) is not delivered and is logged.
//!
//! A callback may name any `http` or `https` address the server can reach, internal
//! ones included; registering needs a tenant's write key, and an operator who serves
//! tenants it does not trust should keep the server's outbound traffic to the public
//! network with a firewall or proxy.
//!
//! Limits: [`SUBSCRIPTIONS_PER_TENANT_MAX`] listeners per tenant (two registrations
//! racing at the limit may both pass it), callbacks of at most [`CALLBACK_LEN_MAX`]
//! bytes with an `http` or `https` URL.

use super::errors::TmfError;
use super::json::{member_is, to_vec};
use super::types::PathSegment;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use prepaid_edge::auth::{Caller, Write};
use prepaid_edge::failure::Failure;
use prepaid_edge::jobs::{self, micros};
use prepaid_edge::periodic::Ticker;
use prepaid_edge::{AppState, SharedState};
use prepaid_edge::{new_uuid, store_problem};
use prepaid_ledger::TenantId;
use prepaid_ledger::{JobQueue, RecordKey, RecordKind};
use prepaid_store::{Job, PAGE_SIZE_MAX, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::time::Duration;
use tokio::sync::watch;

/// The record kind of listener registrations.
pub const HUB_KIND: RecordKind = RecordKind::new("tmf.hub");
/// The job queue of deliveries.
pub const HUB_QUEUE: JobQueue = JobQueue::new("tmf.hub");
/// The job queue of the outbox: one job per event, written in the transaction of the
/// change it describes and fanned out to the listeners by the worker.
pub const OUTBOX_QUEUE: JobQueue = JobQueue::new("tmf.event");
/// How long a claimed outbox job is leased to one worker: fanning out takes a few store
/// calls, and an event whose worker died waits this long to be fanned out again.
pub const OUTBOX_LEASE_MS: u64 = 15_000;
/// The most listeners one tenant may register.
pub const SUBSCRIPTIONS_PER_TENANT_MAX: usize = 100;
/// The longest callback URL, in bytes.
pub const CALLBACK_LEN_MAX: usize = 1024;
/// The longest `query`, in bytes.
pub const QUERY_LEN_MAX: usize = 1024;
/// The most terms of one `query`.
pub const QUERY_TERMS_MAX: usize = 16;
/// How many times one event is offered to one listener before it is dropped.
pub const DELIVERY_ATTEMPTS_MAX: u32 = 10;
/// The wait after the first failed attempt; it doubles with every further one.
pub const BACKOFF_BASE_MS: u64 = 1_000;
/// The longest wait between two attempts.
pub const BACKOFF_MS_MAX: u64 = 300_000;
/// How long a callback may take to answer.
pub const DELIVERY_TIMEOUT_MS: u64 = 10_000;
/// How long a claimed delivery is leased to one worker: longer than an attempt may take
/// ([`DELIVERY_TIMEOUT_MS`]), and short, since a delivery whose worker died (a crash)
/// waits this long to be sent again.
pub const DELIVERY_LEASE_MS: u64 = 15_000;
/// How often the worker looks for due deliveries.
pub const HUB_INTERVAL_MS: u64 = 200;

/// Every event type of TMF654 v4.
pub const EVENT_TYPES: [&str; 12] = [
    "TopupBalanceCreateEvent",
    "TopupBalanceCancelEvent",
    "TopupBalanceFailureEvent",
    "AdjustBalanceCreateEvent",
    "AdjustBalanceCancelEvent",
    "AdjustBalanceFailureEvent",
    "TransferBalanceCreateEvent",
    "TransferBalanceCancelEvent",
    "TransferBalanceFailureEvent",
    "ReserveBalanceCreateEvent",
    "ReserveBalanceCancelEvent",
    "ReserveBalanceFailureEvent",
];

prepaid_edge::routes! {
    rows, pub route_table;
    "/hub" => post(register): Write;
    "/hub/{id}" => delete(unregister): Write;
}

/// The routes of `/hub`, merged into both flavours' routers: the rows of
/// [`route_table`].
pub fn routes() -> Router<SharedState> {
    prepaid_edge::routes::build(rows())
}

// ---------------------------------------------------------------------------------
// Errors.

fn bad_request(message: impl Into<Cow<'static, str>>) -> TmfError {
    TmfError::invalid(message)
}

fn not_found() -> TmfError {
    TmfError::not_found("listener_not_found", "listener")
}

fn store_error(e: &StoreError, context: &str) -> TmfError {
    store_problem(e, context).into()
}

// ---------------------------------------------------------------------------------
// Registrations.

/// A listener as stored and as answered (`EventSubscription`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Subscription {
    id: String,
    callback: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    query: Option<String>,
}

/// `EventSubscriptionInput`; other members (`@type`, ...) are ignored.
#[derive(Deserialize)]
struct SubscriptionIn {
    callback: String,
    #[serde(default)]
    query: Option<String>,
}

/// Checks a callback URL: `http` or `https` with a host, at most [`CALLBACK_LEN_MAX`]
/// bytes.
fn check_callback(callback: &str) -> Result<(), String> {
    if callback.len() > CALLBACK_LEN_MAX {
        return Err(format!(
            "callback: must be at most {CALLBACK_LEN_MAX} bytes long"
        ));
    }
    let url = reqwest::Url::parse(callback).map_err(|e| format!("callback: not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("callback: must be an http or https URL with a host".into());
    }
    Ok(())
}

fn no_customer_keys(caller: &Caller<Write, TmfError>) -> Result<(), TmfError> {
    if caller.customer.is_some() {
        return Err(
            Failure::forbidden("a key restricted to one customer cannot manage listeners").into(),
        );
    }
    Ok(())
}

/// `POST /hub`: registers a listener.
async fn register(
    State(state): State<SharedState>,
    caller: Caller<Write, TmfError>,
    OriginalUri(uri): OriginalUri,
    origin: prepaid_edge::origin::Origin,
    body: Bytes,
) -> Result<Response, TmfError> {
    no_customer_keys(&caller)?;
    let input: SubscriptionIn = prepaid_edge::body::parse_json(&body)?;
    check_callback(&input.callback).map_err(bad_request)?;
    let query = input.query.filter(|q| !q.trim().is_empty());
    if let Some(q) = &query {
        Filter::parse(q).map_err(|e| bad_request(format!("query: {e}")))?;
    }
    let tenant = &caller.tenant;
    let existing = state
        .store
        .records(tenant, HUB_KIND, None, SUBSCRIPTIONS_PER_TENANT_MAX)
        .await
        .map_err(|e| store_error(&e, "counting listeners"))?;
    if existing.len() >= SUBSCRIPTIONS_PER_TENANT_MAX {
        return Err(TmfError::conflict(
            "too_many_listeners",
            format!("a tenant may register at most {SUBSCRIPTIONS_PER_TENANT_MAX} listeners"),
        ));
    }
    let subscription = Subscription {
        id: new_uuid().to_string(),
        callback: input.callback,
        query,
    };
    let value = serde_json::to_string(&subscription).map_err(|e| {
        tracing::error!(error = %e, "encoding a listener failed");
        TmfError::internal()
    })?;
    let key = RecordKey::parse(subscription.id.clone()).map_err(|e| {
        tracing::error!(error = %e, "a fresh listener id is no record key");
        TmfError::internal()
    })?;
    let put = state
        .store
        .put_record(tenant, HUB_KIND, &key, &value, None, state.clock.now())
        .await
        .map_err(|e| store_error(&e, "registering a listener"))?;
    if put.is_none() {
        tracing::error!(id = %subscription.id, "a fresh listener id was taken");
        return Err(TmfError::internal());
    }
    // Absolute, like every other href the server writes.
    let location = format!(
        "{}{}/{}",
        origin.base(),
        uri.path().trim_end_matches('/'),
        subscription.id
    );
    let mut response = prepaid_edge::json_response(StatusCode::CREATED, &subscription, false);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `DELETE /hub/{id}`: removes a listener.
async fn unregister(
    State(state): State<SharedState>,
    caller: Caller<Write, TmfError>,
    seg: PathSegment,
) -> Result<StatusCode, TmfError> {
    no_customer_keys(&caller)?;
    let Ok(id) = RecordKey::parse(seg.0) else {
        return Err(not_found());
    };
    let deleted = state
        .store
        .delete_record(&caller.tenant, HUB_KIND, &id)
        .await
        .map_err(|e| store_error(&e, "removing a listener"))?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// Every listener of `tenant`, page by page.
async fn subscriptions(
    state: &AppState,
    tenant: &TenantId,
) -> Result<Vec<Subscription>, StoreError> {
    let mut out = Vec::new();
    let mut after: Option<RecordKey> = None;
    loop {
        let page = state
            .store
            .records(tenant, HUB_KIND, after.as_ref(), PAGE_SIZE_MAX)
            .await?;
        let full = page.len() == PAGE_SIZE_MAX;
        after = page.last().map(|r| r.key.clone());
        for record in page {
            match serde_json::from_str::<Subscription>(&record.value) {
                Ok(s) => out.push(s),
                Err(e) => tracing::error!(error = %e, tenant = %tenant, key = %record.key,
                    "skipping a corrupt listener record"),
            }
        }
        if !full {
            return Ok(out);
        }
    }
}

// ---------------------------------------------------------------------------------
// Query filters.

/// A parsed `query` (see the module documentation for its grammar).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Filter {
    terms: Vec<Term>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Term {
    /// The path from the envelope's root: `["eventType"]`, `["event", "topupBalance", ...]`.
    path: Vec<String>,
    values: Vec<String>,
}

impl Filter {
    fn parse(query: &str) -> Result<Filter, String> {
        if query.len() > QUERY_LEN_MAX {
            return Err(format!("must be at most {QUERY_LEN_MAX} bytes long"));
        }
        let query = query.trim();
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut terms = Vec::new();
        for text in query.split('&') {
            if text.trim().is_empty() {
                continue;
            }
            if terms.len() == QUERY_TERMS_MAX {
                return Err(format!("must have at most {QUERY_TERMS_MAX} terms"));
            }
            let Some((name, values)) = text.split_once('=') else {
                return Err(format!("{:?} is not name=value", text.trim()));
            };
            let name = name.trim();
            let path: Vec<String> = name.split('.').map(str::to_owned).collect();
            let known = name == "eventType"
                || (path.len() >= 2 && path[0] == "event" && path.iter().all(|m| !m.is_empty()));
            if !known {
                return Err(format!(
                    "{name:?} is neither eventType nor a member path like event.topupBalance.id"
                ));
            }
            let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).collect();
            if values.iter().any(String::is_empty) {
                return Err(format!("{name} has an empty value"));
            }
            if name == "eventType"
                && let Some(bad) = values.iter().find(|v| !EVENT_TYPES.contains(&v.as_str()))
            {
                return Err(format!("{bad:?} is not an event type of this API"));
            }
            terms.push(Term { path, values });
        }
        Ok(Filter { terms })
    }

    fn matches(&self, event: &Value) -> bool {
        self.terms.iter().all(|term| {
            term.values
                .iter()
                .any(|want| member_is(event, &term.path, want))
        })
    }
}

// ---------------------------------------------------------------------------------
// Publishing.

/// The member of `event` that holds the resource: `TopupBalanceCreateEvent` ->
/// `topupBalance`.
fn resource_member(event_type: &str) -> String {
    let stem = ["CreateEvent", "CancelEvent", "FailureEvent"]
        .iter()
        .find_map(|suffix| event_type.strip_suffix(suffix))
        .unwrap_or(event_type);
    let mut chars = stem.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// A delivery as queued.
#[derive(Serialize, Deserialize)]
struct Delivery {
    subscription: String,
    callback: String,
    event: Value,
}

/// The ledger entity an outboxed event names, rendered as the TMF resource when the
/// event is fanned out (after the change committed, so the resource shows it as
/// committed: its times, the balance it left).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Subject {
    /// `topupBalance`, `adjustBalance`, `transferBalance` or `reserveBalance`.
    pub collection: String,
    /// The action's id (the mutation, transfer or hold id).
    pub id: String,
}

/// An event in the outbox.
#[derive(Serialize, Deserialize)]
struct Outboxed {
    event_type: String,
    event_time: String,
    /// The TM Forum mount's root as the request that made the change saw it, so that
    /// the event's hrefs use the client's host.
    root: String,
    /// The entity to render when the event is fanned out, or else `resource`.
    subject: Option<Subject>,
    /// The resource as rendered before the change, for events whose resource is not
    /// one ledger entity (a period of a recurring plan).
    resource: Option<Value>,
}

/// Whether `tenant` has a listener. An operation puts an event into its unit only
/// then; a listener registered while the operation runs may miss that one event, as
/// it would had it registered a moment later.
pub async fn has_listeners(state: &AppState, tenant: &TenantId) -> Result<bool, StoreError> {
    Ok(!state
        .store
        .records(tenant, HUB_KIND, None, 1)
        .await?
        .is_empty())
}

/// The outbox job (its id, the event id, and payload) of `event_type` about `subject`:
/// the caller links it to the operation that makes the change, with
/// [`prepaid_edge::submit::Operation::enqueue`] on [`OUTBOX_QUEUE`]. `None` (logged) for
/// an unknown event type or an event too large to queue.
pub fn outboxed(
    event_type: &str,
    root: &str,
    at: prepaid_ledger::Timestamp,
    subject: Subject,
) -> Option<(RecordKey, String)> {
    outbox_job(event_type, root, at, Some(subject), None)
}

/// [`outboxed`] for an event whose resource is rendered already.
pub fn outboxed_resource(
    event_type: &str,
    at: prepaid_ledger::Timestamp,
    resource: Value,
) -> Option<(RecordKey, String)> {
    outbox_job(event_type, "", at, None, Some(resource))
}

fn outbox_job(
    event_type: &str,
    root: &str,
    at: prepaid_ledger::Timestamp,
    subject: Option<Subject>,
    resource: Option<Value>,
) -> Option<(RecordKey, String)> {
    if !EVENT_TYPES.contains(&event_type) {
        debug_assert!(false, "unknown TMF event type {event_type:?}");
        tracing::error!(event_type, "not publishing an event of an unknown type");
        return None;
    }
    let id = RecordKey::from_uuid(new_uuid());
    let payload = serde_json::to_string(&Outboxed {
        event_type: event_type.to_owned(),
        event_time: prepaid_edge::time::format(at),
        root: root.to_owned(),
        subject,
        resource,
    })
    .ok()?;
    if !prepaid_store::records::value_is_valid(&payload) {
        tracing::error!(
            event_type,
            "an event is too large to queue; not delivering it"
        );
        return None;
    }
    Some((id, payload))
}

/// Fans an outboxed event out to the listeners, then takes it off the outbox. A
/// failure leaves it to be fanned out again (deliveries have deterministic ids, so a
/// listener gets each event once per fan-out at most, at least once in all).
async fn fan_out_job(state: SharedState, job: Job) {
    let Ok(event) = serde_json::from_str::<Outboxed>(&job.payload) else {
        tracing::error!(job = %job.id, tenant = %job.tenant, "dropping a corrupt TMF outbox job");
        finish_in(&state, &job, OUTBOX_QUEUE).await;
        return;
    };
    let rendered = match (&event.subject, event.resource) {
        (Some(subject), _) => {
            super::resources::event_resource(&state, &job.tenant, &event.root, subject).await
        }
        (None, resource) => Ok(resource),
    };
    let resource = match rendered {
        Ok(Some(resource)) => resource,
        Ok(None) => {
            tracing::error!(job = %job.id, tenant = %job.tenant,
                    "an outboxed event names nothing; dropping it");
            finish_in(&state, &job, OUTBOX_QUEUE).await;
            return;
        }
        Err(why) => {
            tracing::warn!(error = ?why, "rendering an outboxed event failed; retrying");
            defer_in(&state, &job, OUTBOX_QUEUE, "rendering failed").await;
            return;
        }
    };
    match fan_out(
        &state,
        &job.tenant,
        &event.event_type,
        job.id.as_str(),
        &event.event_time,
        resource,
    )
    .await
    {
        Ok(()) => finish_in(&state, &job, OUTBOX_QUEUE).await,
        Err(e) => {
            tracing::warn!(error = %e, "fanning out an event failed; retrying");
            defer_in(&state, &job, OUTBOX_QUEUE, "the store is unavailable").await;
        }
    }
}

/// Queues `event_type` about `resource` for every listener of `tenant` whose query
/// selects it; returns without waiting for any delivery. For events that describe no
/// committed change (a refused action's `Failure`); an event about a change goes into
/// the change's own unit instead ([`outboxed`]). `event_type` must be one of
/// [`EVENT_TYPES`].
pub async fn publish(
    state: &AppState,
    tenant: &TenantId,
    event_type: &str,
    resource: Value,
) -> Result<(), StoreError> {
    if !EVENT_TYPES.contains(&event_type) {
        debug_assert!(false, "unknown TMF event type {event_type:?}");
        tracing::error!(event_type, "not publishing an event of an unknown type");
        return Ok(());
    }
    let now = prepaid_edge::time::format(state.clock.now());
    fan_out(
        state,
        tenant,
        event_type,
        &new_uuid().to_string(),
        &now,
        resource,
    )
    .await
}

/// Queues one delivery of the event per listener whose query selects it.
async fn fan_out(
    state: &AppState,
    tenant: &TenantId,
    event_type: &str,
    event_id: &str,
    event_time: &str,
    resource: Value,
) -> Result<(), StoreError> {
    let listeners = subscriptions(state, tenant).await?;
    if listeners.is_empty() {
        return Ok(());
    }
    let now = state.clock.now();
    let mut payload = serde_json::Map::new();
    payload.insert(resource_member(event_type), resource);
    let event = json!({
        "eventId": event_id,
        "eventTime": event_time,
        "eventType": event_type,
        "event": Value::Object(payload),
    });
    for listener in listeners {
        let selected = match listener.query.as_deref().map(Filter::parse) {
            None => true,
            Some(Ok(filter)) => filter.matches(&event),
            Some(Err(e)) => {
                tracing::error!(error = %e, listener = %listener.id, "a stored query no longer parses");
                false
            }
        };
        if !selected {
            continue;
        }
        let job_id = format!("{}:{event_id}", listener.id);
        let delivery = Delivery {
            subscription: listener.id,
            callback: listener.callback,
            event: event.clone(),
        };
        let Ok(body) = serde_json::to_string(&delivery) else {
            tracing::error!(event_type, "encoding an event failed");
            continue;
        };
        let (Ok(job_id), true) = (
            RecordKey::parse(job_id),
            prepaid_store::records::value_is_valid(&body),
        ) else {
            tracing::error!(
                event_type,
                bytes = body.len(),
                "an event is too large to queue; not delivering it"
            );
            metrics::counter!("prepaid_tmf_hub_dropped_total").increment(1);
            continue;
        };
        state
            .store
            .enqueue_job(tenant, HUB_QUEUE, &job_id, &body, now)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Delivering.

/// The wait after `attempts` failed attempts.
fn backoff_ms(attempts: u32) -> u64 {
    let doublings = attempts.saturating_sub(1).min(30);
    BACKOFF_BASE_MS
        .saturating_mul(1u64 << doublings)
        .min(BACKOFF_MS_MAX)
}

/// Delivers due events until `stop` turns true.
pub async fn run(state: SharedState, stop: watch::Receiver<bool>) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_millis(DELIVERY_TIMEOUT_MS))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("prepaid/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; TMF events will not be delivered");
            return;
        }
    };
    let mut failing = false;
    // Deliveries in flight at shutdown are abandoned; their leases end and they are
    // delivered again later (at least once).
    let mut ticker = Ticker::new(Duration::from_millis(HUB_INTERVAL_MS), stop);
    let mut outbox_failing = false;
    while ticker.tick().await {
        let fanning = jobs::drain(
            &state,
            OUTBOX_QUEUE,
            OUTBOX_LEASE_MS,
            "TMF outbox events",
            &mut outbox_failing,
            fan_out_job,
        );
        if !ticker.unless_stopped(fanning).await {
            return;
        }
        let round = jobs::drain(
            &state,
            HUB_QUEUE,
            DELIVERY_LEASE_MS,
            "TMF events",
            &mut failing,
            |state, job| deliver(state, http.clone(), job),
        );
        if !ticker.unless_stopped(round).await {
            return;
        }
    }
}

async fn deliver(state: SharedState, http: reqwest::Client, job: Job) {
    let Ok(delivery) = serde_json::from_str::<Delivery>(&job.payload) else {
        tracing::error!(job = %job.id, tenant = %job.tenant, "dropping a corrupt TMF event job");
        finish(&state, &job).await;
        return;
    };
    let Ok(subscription) = RecordKey::parse(delivery.subscription.clone()) else {
        tracing::error!(job = %job.id, tenant = %job.tenant, "dropping a TMF event job for no listener");
        finish(&state, &job).await;
        return;
    };
    match state
        .store
        .record(&job.tenant, HUB_KIND, &subscription)
        .await
    {
        Ok(Some(_)) => {}
        Ok(None) => {
            // The listener was removed: nothing more goes to it.
            finish(&state, &job).await;
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "looking up a listener failed; retrying");
            retry(&state, &job, &delivery, "the store is unavailable").await;
            return;
        }
    }
    // Exact decimals of the resource are written as JSON numbers, as in answers.
    let outcome = http
        .post(&delivery.callback)
        .header(header::CONTENT_TYPE, "application/json")
        .body(to_vec(&delivery.event))
        .send()
        .await;
    match outcome {
        Ok(answer) if answer.status().is_success() => {
            metrics::counter!("prepaid_tmf_hub_delivered_total").increment(1);
            finish(&state, &job).await;
        }
        Ok(answer) => {
            let why = format!("the callback answered {}", answer.status().as_u16());
            retry(&state, &job, &delivery, &why).await;
        }
        Err(e) => {
            let why = if e.is_timeout() {
                "the callback timed out".to_owned()
            } else {
                "the callback could not be reached".to_owned()
            };
            retry(&state, &job, &delivery, &why).await;
        }
    }
}

/// Schedules the next attempt, or drops the event after [`DELIVERY_ATTEMPTS_MAX`].
async fn retry(state: &SharedState, job: &Job, delivery: &Delivery, why: &str) {
    metrics::counter!("prepaid_tmf_hub_failed_total").increment(1);
    if job.attempts >= DELIVERY_ATTEMPTS_MAX {
        tracing::warn!(tenant = %job.tenant, listener = %delivery.subscription,
            event_id = delivery.event["eventId"].as_str().unwrap_or_default(),
            attempts = job.attempts, why, "dropping a TMF event that could not be delivered");
        metrics::counter!("prepaid_tmf_hub_dropped_total").increment(1);
        finish(state, job).await;
        return;
    }
    let wait = backoff_ms(job.attempts);
    tracing::info!(tenant = %job.tenant, listener = %delivery.subscription,
        attempts = job.attempts, wait_ms = wait, why, "a TMF event delivery failed; retrying");
    let due = state.clock.now().plus_micros(micros(wait));
    if let Err(e) = state
        .store
        .defer_job(&job.tenant, HUB_QUEUE, &job.id, due)
        .await
    {
        tracing::warn!(error = %e, "deferring a TMF event failed; its lease will end");
    }
}

async fn finish(state: &SharedState, job: &Job) {
    finish_in(state, job, HUB_QUEUE).await;
}

async fn finish_in(state: &SharedState, job: &Job, queue: JobQueue) {
    if let Err(e) = state.store.finish_job(&job.tenant, queue, &job.id).await {
        tracing::warn!(error = %e, job = %job.id, queue = %queue, "finishing a TMF event job failed; it may be delivered again");
    }
}

/// Retries an outbox job after the backoff of its attempts.
async fn defer_in(state: &SharedState, job: &Job, queue: JobQueue, why: &str) {
    let wait = backoff_ms(job.attempts);
    tracing::info!(tenant = %job.tenant, job = %job.id, wait_ms = wait, why, "retrying a TMF outbox job");
    let due = state.clock.now().plus_micros(micros(wait));
    if let Err(e) = state
        .store
        .defer_job(&job.tenant, queue, &job.id, due)
        .await
    {
        tracing::warn!(error = %e, "deferring a TMF outbox job failed; its lease will end");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str) -> Value {
        json!({"eventId": "e", "eventType": event_type,
            "event": {"topupBalance": {"id": "t1", "bucket": {"id": "w1"}, "numberOfPeriods": 3,
                "isAutoTopup": true}}})
    }

    #[test]
    fn queries_select_by_type() {
        let f = Filter::parse("eventType=TopupBalanceCreateEvent").unwrap();
        assert!(f.matches(&event("TopupBalanceCreateEvent")));
        assert!(!f.matches(&event("TopupBalanceFailureEvent")));
        let f = Filter::parse("?eventType = TopupBalanceCreateEvent, TopupBalanceFailureEvent")
            .unwrap();
        assert!(f.matches(&event("TopupBalanceCreateEvent")));
        assert!(f.matches(&event("TopupBalanceFailureEvent")));
        assert!(!f.matches(&event("TopupBalanceCancelEvent")));
        assert!(
            Filter::parse("")
                .unwrap()
                .matches(&event("AdjustBalanceCancelEvent"))
        );
    }

    #[test]
    fn queries_select_by_member() {
        let f = Filter::parse("eventType=TopupBalanceCreateEvent&event.topupBalance.bucket.id=w1")
            .unwrap();
        assert!(f.matches(&event("TopupBalanceCreateEvent")));
        let f = Filter::parse("event.topupBalance.bucket.id=w2").unwrap();
        assert!(!f.matches(&event("TopupBalanceCreateEvent")));
        let f = Filter::parse(
            "event.topupBalance.numberOfPeriods=3&event.topupBalance.isAutoTopup=true",
        )
        .unwrap();
        assert!(f.matches(&event("TopupBalanceCreateEvent")));
        let f = Filter::parse("event.topupBalance.missing=x").unwrap();
        assert!(!f.matches(&event("TopupBalanceCreateEvent")));
        // An object is never equal to a value.
        let f = Filter::parse("event.topupBalance.bucket=w1").unwrap();
        assert!(!f.matches(&event("TopupBalanceCreateEvent")));
    }

    #[test]
    fn bad_queries_are_refused() {
        assert!(Filter::parse("eventType=Nope").is_err());
        assert!(Filter::parse("state=completed").is_err());
        assert!(Filter::parse("event.=x").is_err());
        assert!(Filter::parse("eventType").is_err());
        assert!(Filter::parse("eventType=TopupBalanceCreateEvent,").is_err());
        let at_limit = vec!["event.a=b"; QUERY_TERMS_MAX].join("&");
        assert!(Filter::parse(&at_limit).is_ok());
        let over = vec!["event.a=b"; QUERY_TERMS_MAX + 1].join("&");
        assert!(Filter::parse(&over).is_err());
        let long = format!("event.a={}", "b".repeat(QUERY_LEN_MAX - "event.a=".len()));
        assert!(Filter::parse(&long).is_ok());
        assert!(Filter::parse(&format!("{long}b")).is_err());
    }

    #[test]
    fn callbacks_are_http_urls() {
        assert!(check_callback("http://127.0.0.1:9/x").is_ok());
        assert!(check_callback("https://example.com/listener?a=1").is_ok());
        assert!(check_callback("ftp://example.com/").is_err());
        assert!(check_callback("not a url").is_err());
        assert!(check_callback("mailto:x@example.com").is_err());
        let base = "https://example.com/";
        let at = format!("{base}{}", "a".repeat(CALLBACK_LEN_MAX - base.len()));
        assert!(check_callback(&at).is_ok());
        assert!(check_callback(&format!("{at}a")).is_err());
    }

    #[test]
    fn resources_are_named_after_the_event() {
        assert_eq!(resource_member("TopupBalanceCreateEvent"), "topupBalance");
        assert_eq!(
            resource_member("ReserveBalanceFailureEvent"),
            "reserveBalance"
        );
        assert_eq!(
            resource_member("TransferBalanceCancelEvent"),
            "transferBalance"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff_ms(1), BACKOFF_BASE_MS);
        assert_eq!(backoff_ms(3), 4 * BACKOFF_BASE_MS);
        assert_eq!(
            backoff_ms(DELIVERY_ATTEMPTS_MAX),
            BACKOFF_MS_MAX.min(BACKOFF_BASE_MS << (DELIVERY_ATTEMPTS_MAX - 1))
        );
        assert_eq!(backoff_ms(u32::MAX), BACKOFF_MS_MAX);
    }
}
