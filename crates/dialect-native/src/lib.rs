//! The native API (`/v1`), exactly as `docs/native-api.md` describes it.
//!
//! Each handler authenticates (the scope is part of the extractor's type, so 401 and
//! 403 come before the body is read), parses the body into ledger types, chooses the
//! ids of new entities (UUID v7) and sends one command to the engine. Reads go to the
//! store directly; a customer-restricted key sees only its customer, and anything else
//! is 404 to it.

mod alerts;
mod auto_topup;
mod export;
pub mod types;
pub mod webhooks;

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use prepaid_edge::auth::{Admin, Caller, Principal, Read, Write, generate_secret, secret_digest};
use prepaid_edge::body::{JsonBody, fingerprint, from_value};
use prepaid_edge::page::{ListQuery, encode_cursor};
use prepaid_edge::problem::Problem;
use prepaid_edge::refusals::{self, unexpected};
use prepaid_edge::submit::Operation;
use prepaid_edge::time::WireTime;
use prepaid_edge::{ADMIN_KEY_NAME, SharedState};
use prepaid_edge::{PathSegment, engine_problem, json_response, new_uuid, store_problem};
use prepaid_ledger::{
    AMOUNT_MAX, Amount, BALANCE_ABS_MAX, Command, CustomerId, DEFAULT_VALIDITY_SECONDS_MAX,
    DEFAULT_VALIDITY_SETTING, Done, Fingerprint, Floor, GrantCategory, GrantTerms, HoldId,
    IdempotencyKey, Metadata, MutationId, MutationKind, NewApiKey, NewWallet, Outcome,
    PRIORITY_MAX, Priority, Reference, Request, Scopes, SettingKey, TenantId, TransferId, Unit,
    WalletId, WalletStatus, default_scale, default_validity_seconds,
};
use prepaid_store::{GrantCursor, MetadataFilter, MutationQuery, Page, WalletQuery};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use types::*;
use utoipa::OpenApi;

/// The most items in one `POST /v1/batch`.
pub const BATCH_ITEMS_MAX: usize = 8000;

prepaid_edge::routes! {
    rows, pub own_route_table;
    "/tenants" => post(create_tenant): Admin;
    "/api-keys" => post(create_api_key): Admin;
    "/customers" => post(create_customer): Write, get(list_customers): Read;
    "/customers/{id}" => get(get_customer): Read, patch(patch_customer): Write;
    "/customers/{id}/wallets" => post(create_wallet): Write, get(list_customer_wallets): Read;
    "/wallets" => get(list_wallets): Read;
    "/wallets/{id}" => get(get_wallet): Read, patch(patch_wallet): Write;
    "/wallets/{id}/mutations" => post(post_mutation): Write, get(list_mutations): Read;
    "/wallets/{id}/mutations.csv" => get(export::wallet_mutations_csv): Read;
    "/wallets/{id}/holds" => post(place_hold): Write;
    "/wallets/{id}/grants" => get(list_grants): Read;
    "/wallets/{id}/auto-topup" => put(auto_topup::put_auto_topup): Write,
        get(auto_topup::get_auto_topup): Read, delete(auto_topup::delete_auto_topup): Write;
    "/wallets/{id}/low-balance-alert" => put(alerts::put_alert): Write,
        get(alerts::get_alert): Read, delete(alerts::delete_alert): Write;
    "/mutations.csv" => get(export::mutations_csv): Read;
    "/mutations/{id}" => get(get_mutation): Read;
    "/mutations/{id}/reverse" => post(reverse_mutation): Write;
    "/batch" => post(batch): Write;
    "/transfers" => post(transfer): Write;
    "/holds/{id}" => get(get_hold): Read;
    "/holds/{id}/commit" => post(commit_hold): Write;
    "/holds/{id}/release" => post(release_hold): Write;
    "/settings" => get(get_settings): Read, patch(patch_settings): Admin;
    "/openapi.json" => get(openapi_json): prepaid_edge::routes::Public;
}

/// The routes of the native API, to be nested under `/v1`; `/v1/openapi.json` serves
/// `doc`, the assembled document of everything under `/v1` (see [`openapi`]).
pub fn router(
    doc: &utoipa::openapi::OpenApi,
    webhooks: webhooks::WebhookConfig,
) -> Router<SharedState> {
    let bytes: Arc<[u8]> = serde_json::to_vec(doc).unwrap_or_default().into();
    let mut all = rows();
    all.extend(webhooks::rows_for_router());
    prepaid_edge::routes::build(all)
        .method_not_allowed_fallback(prepaid_edge::problem::method_not_allowed)
        .layer(Extension(OpenApiJson(bytes)))
        .layer(Extension(webhooks))
}

/// Every (HTTP method, path) of the native API under `/v1`, with the scope its key
/// needs: what [`router`] serves.
pub fn route_table() -> Vec<prepaid_edge::routes::Route> {
    let mut table = own_route_table();
    table.extend(webhooks::route_table());
    table
}

// ---------------------------------------------------------------------------------
// Helpers.

/// Sends one command for `caller`; a refusal becomes its problem.
async fn submit(
    state: &SharedState,
    caller: &Principal,
    idempotency: Option<(IdempotencyKey, Fingerprint)>,
    command: Command,
) -> Result<(Done, bool), Problem> {
    Operation::new(caller, command)
        .idempotency(idempotency)
        .submit(state, "submitting a command")
        .await?
        .map_err(|r| refusals::refusal(&r))
}

/// Submits a command that sets or removes a wallet's sub-resource (its automatic
/// top-up, its low-balance alert), which answers [`Done::Records`]; `what` names it
/// in the log of an unexpected answer.
async fn submit_records(
    state: &SharedState,
    caller: &Principal,
    idempotency: Option<(IdempotencyKey, Fingerprint)>,
    command: Command,
    what: &str,
) -> Result<(), Problem> {
    match submit(state, caller, idempotency, command).await? {
        (Done::Records, _) => Ok(()),
        (other, _) => Err(refusals::unexpected(&other, what)),
    }
}

/// The record of `kind` a wallet's sub-resource keeps under the wallet's id, decoded
/// by `decode`; `None` when there is none. One that does not decode is logged and
/// answered as an internal error.
async fn wallet_record<T>(
    state: &SharedState,
    tenant: &TenantId,
    wallet: &WalletId,
    kind: prepaid_ledger::RecordKind,
    what: &str,
    decode: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, Problem> {
    let key = prepaid_ledger::RecordKey::parse(wallet.as_str()).map_err(|_| Problem::internal())?;
    let record = state
        .store
        .record(tenant, kind, &key)
        .await
        .map_err(|e| Problem::from(store_problem(&e, what)))?;
    let Some(record) = record else {
        return Ok(None);
    };
    decode(&record.value).map(Some).map_err(|why| {
        tracing::error!(%tenant, %wallet, "{what}: a record that does not decode: {why}");
        Problem::internal()
    })
}

fn reference(r: Option<ReferenceIn>) -> Reference {
    r.map(|r| r.0).unwrap_or_default()
}

/// The metadata a body gives, its field named after `prefix` when refused.
fn metadata(prefix: &str, pairs: Option<MetadataIn>) -> Result<Metadata, Problem> {
    prepaid_edge::wire::metadata(prefix, pairs).map_err(Problem::from)
}

fn positive(field: &str, amount: i64) -> Result<Amount, Problem> {
    Amount::positive(amount).map_err(|e| Problem::invalid_field(field, e))
}

/// The terms of the grant a credit makes; refused on a debit, which makes none.
fn grant_terms(
    prefix: &str,
    credit: bool,
    expires_at: Option<WireTime>,
    priority: Option<u8>,
    category: Option<&str>,
) -> Result<GrantTerms, Problem> {
    let given = expires_at.is_some() || priority.is_some() || category.is_some();
    if given && !credit {
        return Err(Problem::invalid_field(
            &format!("{prefix}expires_at"),
            "a debit makes no grant: expires_at, priority and category are for credits",
        ));
    }
    let priority = match priority {
        None => Priority::DEFAULT,
        Some(p) => Priority::new(p).ok_or_else(|| {
            Problem::invalid_field(
                &format!("{prefix}priority"),
                format_args!("must be 0 to {PRIORITY_MAX}"),
            )
        })?,
    };
    let category = match category {
        None => GrantCategory::Paid,
        Some(c) => GrantCategory::parse(c)
            .map_err(|e| Problem::invalid_field(&format!("{prefix}category"), e))?,
    };
    Ok(GrantTerms {
        expires_at: expires_at.map(|t| t.0),
        priority,
        category,
    })
}

/// The amount of a direct posting: positive for top-ups and debits, non-zero for
/// adjustments.
fn post_amount(
    field: &str,
    kind: PostKind,
    amount: i64,
) -> Result<(MutationKind, Amount), Problem> {
    match kind {
        PostKind::TopUp => Ok((MutationKind::TopUp, positive(field, amount)?)),
        PostKind::Debit => Ok((MutationKind::Debit, positive(field, amount)?)),
        PostKind::Adjustment => Ok((
            MutationKind::Adjustment,
            Amount::nonzero(amount).map_err(|e| Problem::invalid_field(field, e))?,
        )),
    }
}

/// A path id of a client-chosen kind; one that cannot be valid cannot exist either.
fn path_id<T: TextId>(seg: &PathSegment, not_found: &'static str) -> Result<T, Problem> {
    T::parse_id(&seg.0).map_err(|_| Problem::not_found(not_found, not_found_detail(not_found)))
}

/// A path id of a server-chosen kind (a UUID).
fn path_uuid(seg: &PathSegment, not_found: &'static str) -> Result<uuid::Uuid, Problem> {
    uuid::Uuid::try_parse(&seg.0)
        .map_err(|_| Problem::not_found(not_found, not_found_detail(not_found)))
}

fn not_found_detail(code: &'static str) -> &'static str {
    match code {
        "customer_not_found" => "no such customer",
        "wallet_not_found" => "no such wallet",
        "hold_not_found" => "no such hold",
        "mutation_not_found" => "no such mutation",
        "tenant_not_found" => "no such tenant",
        _ => "no such resource",
    }
}

fn not_found(code: &'static str) -> Problem {
    Problem::not_found(code, not_found_detail(code))
}

fn created<T: serde::Serialize>(value: &T, replayed: bool) -> Response {
    json_response(StatusCode::CREATED, value, replayed)
}

fn ok<T: serde::Serialize>(value: &T) -> Response {
    json_response(StatusCode::OK, value, false)
}

fn next_cursor<C: ToString>(next: Option<C>) -> Option<String> {
    next.map(|c| encode_cursor(&c.to_string()))
}

type Answer = Result<Response, Problem>;

// ---------------------------------------------------------------------------------
// Tenants and keys.

#[utoipa::path(post, path = "/v1/tenants", tag = "tenants",
    request_body = CreateTenantIn,
    responses((status = 201, body = TenantOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Creates a tenant with its admin key (only the operator's admin key may).
async fn create_tenant(
    State(state): State<SharedState>,
    caller: Caller<Admin>,
    body: JsonBody<CreateTenantIn>,
) -> Answer {
    if caller.tenant != state.operator || caller.customer.is_some() {
        return Err(Problem::forbidden(
            "only the operator's admin key may create tenants",
        ));
    }
    let name = body.value.name.map(|n| n.0).unwrap_or_default();
    let secret = generate_secret();
    let command = Command::CreateTenant {
        tenant: body
            .value
            .id
            .map_or_else(|| TenantId::from_uuid(new_uuid()), |i| i.0),
        name: name.clone(),
        admin_key: NewApiKey {
            name: prepaid_ledger::ApiKeyName::parse(ADMIN_KEY_NAME)
                .expect("the admin key name is a valid name"),
            secret_sha256: secret_digest(&secret),
            scopes: Scopes::ALL,
            customer: None,
        },
    };
    match submit(&state, &caller, body.idempotency, command).await? {
        (Done::Tenant { tenant, admin_key }, replayed) => {
            // A replay cannot show the secret again: only its digest was kept.
            let secret = (!replayed).then_some(secret.as_str());
            Ok(created(
                &TenantOut {
                    id: tenant.as_str(),
                    name: &name,
                    admin_key: ApiKeyOut::new(&admin_key, secret),
                },
                replayed,
            ))
        }
        (other, _) => Err(unexpected(&other, "tenant")),
    }
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys",
    request_body = CreateApiKeyIn,
    responses((status = 201, body = ApiKeyOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Creates an API key; its secret is shown once, in this answer.
async fn create_api_key(
    State(state): State<SharedState>,
    caller: Caller<Admin>,
    body: JsonBody<CreateApiKeyIn>,
) -> Answer {
    if caller.customer.is_some() {
        return Err(Problem::forbidden(
            "a customer-restricted key may not create keys",
        ));
    }
    let v = body.value;
    if v.scopes.is_empty() {
        return Err(Problem::invalid_field(
            "scopes",
            "must name at least one of read, write, admin",
        ));
    }
    let scopes = Scopes {
        read: v.scopes.contains(&ScopeIn::Read),
        write: v.scopes.contains(&ScopeIn::Write),
        admin: v.scopes.contains(&ScopeIn::Admin),
    };
    let secret = generate_secret();
    let command = Command::CreateApiKey {
        key: NewApiKey {
            name: v.name.0,
            secret_sha256: secret_digest(&secret),
            scopes,
            customer: v.customer_id.map(|c| c.0),
        },
    };
    match submit(&state, &caller, body.idempotency, command).await? {
        (Done::ApiKey(key), replayed) => {
            let secret = (!replayed).then_some(secret.as_str());
            Ok(created(&ApiKeyOut::new(&key, secret), replayed))
        }
        (other, _) => Err(unexpected(&other, "api key")),
    }
}

// ---------------------------------------------------------------------------------
// Customers.

#[utoipa::path(post, path = "/v1/customers", tag = "customers",
    request_body = CreateCustomerIn,
    responses((status = 201, body = CustomerOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Creates a customer.
async fn create_customer(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    body: JsonBody<CreateCustomerIn>,
) -> Answer {
    let v = body.value;
    let command = Command::CreateCustomer {
        id: v
            .id
            .map_or_else(|| CustomerId::from_uuid(new_uuid()), |i| i.0),
        name: v.name.map(|n| n.0).unwrap_or_default(),
        link: v.link.map(|l| l.0).unwrap_or_default(),
    };
    match submit(&state, &caller, body.idempotency, command).await? {
        (Done::Customer(c), replayed) => Ok(created(&CustomerOut::from(&c), replayed)),
        (other, _) => Err(unexpected(&other, "customer")),
    }
}

#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "The customer id")),
    responses((status = 200, body = CustomerOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// One customer.
async fn get_customer(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
) -> Answer {
    let id: CustomerId = path_id(&seg, "customer_not_found")?;
    if !caller.sees(&id) {
        return Err(not_found("customer_not_found"));
    }
    let customer = state
        .store
        .customer(&caller.tenant, &id)
        .await
        .map_err(|e| store_problem(&e, "reading a customer"))?
        .ok_or_else(|| not_found("customer_not_found"))?;
    Ok(ok(&CustomerOut::from(&customer)))
}

#[utoipa::path(patch, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "The customer id")),
    request_body = PatchCustomerIn,
    responses((status = 200, body = CustomerOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Sets a customer's link (the URL by which the client's system addresses it).
async fn patch_customer(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
    body: JsonBody<PatchCustomerIn>,
) -> Answer {
    let id: CustomerId = path_id(&seg, "customer_not_found")?;
    let command = Command::SetCustomerLink {
        id,
        link: body.value.link.0,
    };
    match submit(&state, &caller, body.idempotency, command).await? {
        (Done::Customer(c), replayed) => Ok(json_response(
            StatusCode::OK,
            &CustomerOut::from(&c),
            replayed,
        )),
        (other, _) => Err(unexpected(&other, "customer")),
    }
}

#[utoipa::path(get, path = "/v1/customers", tag = "customers",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1 to 1000, default 100"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page")),
    responses((status = 200, body = CustomerPage), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Customers, ordered by id.
async fn list_customers(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    query: ListQuery,
) -> Answer {
    let after = query
        .after
        .as_deref()
        .map(|a| CustomerId::parse(a).map_err(|_| bad_cursor()))
        .transpose()?;
    let page = match &caller.customer {
        Some(only) => {
            let visible = after.as_ref().is_none_or(|a| only > a);
            let customer = if visible {
                state
                    .store
                    .customer(&caller.tenant, only)
                    .await
                    .map_err(|e| store_problem(&e, "reading a customer"))?
            } else {
                None
            };
            Page {
                items: customer.into_iter().collect(),
                next: None,
            }
        }
        None => state
            .store
            .customers(&caller.tenant, after.as_ref(), query.limit)
            .await
            .map_err(|e| store_problem(&e, "listing customers"))?,
    };
    Ok(ok(&CustomerPage {
        items: page.items.iter().map(CustomerOut::from).collect(),
        next: next_cursor(page.next),
    }))
}

fn bad_cursor() -> Problem {
    Problem::invalid_field("after", "not a cursor that this list gave out")
}

// ---------------------------------------------------------------------------------
// Wallets.

#[utoipa::path(post, path = "/v1/customers/{id}/wallets", tag = "wallets",
    params(("id" = String, Path, description = "The customer id")),
    request_body = CreateWalletIn,
    responses((status = 201, body = WalletOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Opens a wallet for a customer.
async fn create_wallet(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
    body: JsonBody<CreateWalletIn>,
) -> Answer {
    let customer: CustomerId = path_id(&seg, "customer_not_found")?;
    if !caller.sees(&customer) {
        return Err(not_found("customer_not_found"));
    }
    let v = body.value;
    let scale = v.scale.unwrap_or_else(|| default_scale(&v.unit));
    let unit = Unit::new(&v.unit, scale).map_err(|e| match e {
        prepaid_ledger::UnitError::BadScale => Problem::invalid_field("scale", e),
        _ => Problem::invalid_field("unit", e),
    })?;
    let floor = match (v.floor, v.unlimited_overdraft) {
        (Some(_), Some(true)) => {
            return Err(Problem::invalid_field(
                "floor",
                "cannot be combined with unlimited_overdraft",
            ));
        }
        (_, Some(true)) => Floor::Unlimited,
        (Some(f), _) => Floor::limit(f).ok_or_else(|| {
            Problem::invalid_field(
                "floor",
                format!("must be zero or negative, and at least -{AMOUNT_MAX}"),
            )
        })?,
        (None, _) => Floor::ZERO,
    };
    if let Some(c) = v.ceiling_minor
        && !NewWallet::ceiling_is_valid(c)
    {
        return Err(Problem::invalid_field(
            "ceiling_minor",
            format!("must be zero or positive, and at most {BALANCE_ABS_MAX}"),
        ));
    }
    let valid_from = v.valid_from.map(|t| t.0);
    let valid_until = v.valid_until.map(|t| t.0);
    if let (Some(from), Some(until)) = (valid_from, valid_until)
        && until <= from
    {
        return Err(Problem::invalid_field(
            "valid_until",
            "must be after valid_from",
        ));
    }
    let wallet = NewWallet {
        metadata: metadata("", v.metadata)?,
        id: v
            .id
            .map_or_else(|| WalletId::from_uuid(new_uuid()), |i| i.0),
        customer,
        unit,
        name: v.name.map(|n| n.0).unwrap_or_default(),
        product: v.product.map(|n| n.0).unwrap_or_default(),
        floor,
        ceiling: v.ceiling_minor,
        valid_from,
        valid_until,
    };
    let command = Command::CreateWallet { wallet };
    match submit(&state, &caller, body.idempotency, command).await? {
        (Done::Wallet(w), replayed) => Ok(created(&WalletOut::from(&w), replayed)),
        (other, _) => Err(unexpected(&other, "wallet")),
    }
}

async fn wallet_page(
    state: &SharedState,
    caller: &Principal,
    customer: Option<CustomerId>,
    query: &ListQuery,
) -> Answer {
    let after = query
        .after
        .as_deref()
        .map(|a| WalletId::parse(a).map_err(|_| bad_cursor()))
        .transpose()?;
    let page = state
        .store
        .wallets(
            &caller.tenant,
            &WalletQuery {
                metadata: query.metadata.clone(),
                customer,
                after,
                limit: query.limit,
            },
        )
        .await
        .map_err(|e| store_problem(&e, "listing wallets"))?;
    Ok(ok(&WalletPage {
        items: page.items.iter().map(WalletOut::from).collect(),
        next: next_cursor(page.next),
    }))
}

#[utoipa::path(get, path = "/v1/customers/{id}/wallets", tag = "wallets",
    params(("id" = String, Path, description = "The customer id"),
        ("metadata" = Option<MetadataOut>, Query, style = DeepObject, explode,
            description = "`metadata[<key>]=<value>`: only those carrying every pair given (at most 8)"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1 to 1000, default 100"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page")),
    responses((status = 200, body = WalletPage), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// A customer's wallets, ordered by id.
async fn list_customer_wallets(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
    query: ListQuery,
) -> Answer {
    let customer: CustomerId = path_id(&seg, "customer_not_found")?;
    if !caller.sees(&customer) {
        return Err(not_found("customer_not_found"));
    }
    state
        .store
        .customer(&caller.tenant, &customer)
        .await
        .map_err(|e| store_problem(&e, "reading a customer"))?
        .ok_or_else(|| not_found("customer_not_found"))?;
    wallet_page(&state, &caller, Some(customer), &query).await
}

#[utoipa::path(get, path = "/v1/wallets", tag = "wallets",
    params(("customer_id" = Option<String>, Query, description = "Only this customer's wallets"),
        ("metadata" = Option<MetadataOut>, Query, style = DeepObject, explode,
            description = "`metadata[<key>]=<value>`: only those carrying every pair given (at most 8)"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1 to 1000, default 100"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page")),
    responses((status = 200, body = WalletPage), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Wallets, ordered by id.
async fn list_wallets(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    query: ListQuery,
) -> Answer {
    let asked = query
        .customer_id
        .as_deref()
        .map(|c| CustomerId::parse(c).map_err(|e| Problem::invalid_field("customer_id", e)))
        .transpose()?;
    let customer = match (&caller.customer, asked) {
        (Some(only), Some(asked)) if *only != asked => {
            return Ok(ok(&WalletPage {
                items: Vec::new(),
                next: None,
            }));
        }
        (Some(only), _) => Some(only.clone()),
        (None, asked) => asked,
    };
    wallet_page(&state, &caller, customer, &query).await
}

#[utoipa::path(get, path = "/v1/wallets/{id}", tag = "wallets",
    params(("id" = String, Path, description = "The wallet id"),
        ("as_of" = Option<String>, Query, format = DateTime,
            description = "The wallet as it stood then, replayed from its history, with its live grants")),
    responses((status = 200, body = WalletOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// One wallet with its balance; with `as_of`, as it stood at that instant.
async fn get_wallet(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
    uri: axum::http::Uri,
) -> Answer {
    let id: WalletId = path_id(&seg, "wallet_not_found")?;
    let pairs = prepaid_edge::form::pairs(uri.query().unwrap_or_default())
        .map_err(|e| Problem::invalid_field(e.name(), prepaid_edge::form::NOT_UTF8))?;
    let as_of = pairs
        .iter()
        .find(|(k, _)| k == "as_of")
        .map(|(_, v)| prepaid_edge::time::parse(v).map_err(|e| Problem::invalid_field("as_of", e)))
        .transpose()?;
    let wallet = visible_wallet(&state, &caller, &id).await?;
    match as_of {
        None => Ok(ok(&WalletOut::from(&wallet))),
        Some(at) => wallet_as_of(&state, &caller, &wallet, at).await,
    }
}

/// The wallet as it stood at `at`: its history replayed by the ledger
/// (`prepaid_ledger::as_of`), with the grants live then.
async fn wallet_as_of(
    state: &SharedState,
    caller: &Principal,
    wallet: &prepaid_ledger::Wallet,
    at: prepaid_ledger::Timestamp,
) -> Answer {
    let fail = |e: prepaid_store::StoreError| store_problem(&e, "replaying a wallet");
    let (tenant, id) = (&caller.tenant, &wallet.id);
    let limit = prepaid_store::PAGE_SIZE_MAX;
    let max = prepaid_ledger::AS_OF_MUTATIONS_MAX;
    let mutations = every_page(max + 1, |after| {
        let query = MutationQuery {
            metadata: MetadataFilter::default(),
            wallet: Some(id.clone()),
            customer: None,
            after,
            limit,
            ..MutationQuery::default()
        };
        async move { state.store.mutations(tenant, &query).await }
    })
    .await
    .map_err(fail)?;
    if mutations.len() > max {
        return Err(Problem::invalid_field(
            "as_of",
            format_args!("the wallet's history is longer than {max} mutations, the most replayed"),
        ));
    }
    let listed = every_page(usize::MAX, |after| {
        state.store.grants(tenant, id, after, limit)
    })
    .await
    .map_err(fail)?;
    let metadata: std::collections::HashMap<MutationId, &Metadata> =
        listed.iter().map(|g| (g.grant.id, &g.metadata)).collect();
    let grants: Vec<prepaid_ledger::Grant> = listed.iter().map(|g| g.grant.clone()).collect();
    let holds = every_page(usize::MAX, |after| {
        state.store.wallet_holds(tenant, id, after, limit)
    })
    .await
    .map_err(fail)?;
    let then = prepaid_ledger::as_of(&mutations, &grants, &holds, at);
    // Every grant live then is one the store listed; a miss would only lose its labels.
    let no_metadata = Metadata::default();
    let past = prepaid_ledger::Wallet {
        balance: then.balance,
        held: then.held,
        ..wallet.clone()
    };
    Ok(ok(&WalletAsOfOut {
        wallet: WalletOut::from(&past),
        as_of: WireTime(at),
        grants: then
            .grants
            .iter()
            .map(|g| {
                let labels = metadata.get(&g.id).copied().unwrap_or(&no_metadata);
                GrantOut::new(id, g, labels, at)
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/wallets/{id}/grants", tag = "wallets",
    params(("id" = String, Path, description = "The wallet id"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1 to 1000, default 100"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page")),
    responses((status = 200, body = GrantPage), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// A wallet's grants, live, spent and expired, oldest first: what each credit granted,
/// what is left of it, what holds reserve of it, and when it expires.
async fn list_grants(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
    query: ListQuery,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    let after = query
        .after
        .as_deref()
        .map(|a| parse_grant_cursor(a).ok_or_else(bad_cursor))
        .transpose()?;
    visible_wallet(&state, &caller, &wallet).await?;
    let page = state
        .store
        .grants(&caller.tenant, &wallet, after, query.limit)
        .await
        .map_err(|e| store_problem(&e, "listing grants"))?;
    let now = state.clock.now();
    Ok(ok(&GrantPage {
        items: page
            .items
            .iter()
            .map(|g| GrantOut::new(&wallet, &g.grant, &g.metadata, now))
            .collect(),
        next: next_cursor(
            page.next
                .map(|c| format!("{}.{}", c.created_at.as_micros(), c.id.0.simple())),
        ),
    }))
}

/// The items of a store list from its first page on, following `next`, until it ends
/// or `max` items are in hand.
async fn every_page<T, C, F, Fut>(
    max: usize,
    mut page: F,
) -> Result<Vec<T>, prepaid_store::StoreError>
where
    F: FnMut(Option<C>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T, C>, prepaid_store::StoreError>>,
{
    let mut items = Vec::new();
    let mut after = None;
    loop {
        let got = page(after).await?;
        items.extend(got.items);
        match got.next {
            Some(next) if items.len() < max => after = Some(next),
            _ => return Ok(items),
        }
    }
}

/// A cursor of the list of grants: `<created_at micros>.<grant id, 32 hex digits>`.
fn parse_grant_cursor(text: &str) -> Option<GrantCursor> {
    let (at, id) = text.split_once('.')?;
    Some(GrantCursor {
        created_at: prepaid_ledger::Timestamp::from_micros(at.parse().ok()?),
        id: MutationId(uuid::Uuid::try_parse(id).ok()?),
    })
}

async fn visible_wallet(
    state: &SharedState,
    caller: &Principal,
    id: &WalletId,
) -> Result<prepaid_ledger::Wallet, Problem> {
    state
        .store
        .wallet(&caller.tenant, id)
        .await
        .map_err(|e| store_problem(&e, "reading a wallet"))?
        .filter(|w| caller.sees(&w.customer))
        .ok_or_else(|| not_found("wallet_not_found"))
}

#[utoipa::path(patch, path = "/v1/wallets/{id}", tag = "wallets",
    params(("id" = String, Path, description = "The wallet id")),
    request_body = PatchWalletIn,
    responses((status = 200, body = WalletOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Suspends, reactivates or expires a wallet, and sets or removes keys of its metadata,
/// in one unit.
async fn patch_wallet(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
    body: JsonBody<PatchWalletIn>,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    let status = body.value.status.map(|s| match s {
        WalletStatusIn::Active => WalletStatus::Active,
        WalletStatusIn::Suspended => WalletStatus::Suspended,
        WalletStatusIn::Expired => WalletStatus::Expired,
    });
    let patch = body
        .value
        .metadata
        .map(|m| prepaid_edge::wire::metadata_patch("", m))
        .transpose()?;
    let set_status = |status| Command::SetWalletStatus {
        wallet: wallet.clone(),
        status,
    };
    // The metadata change goes last, so the answer shows the wallet with both.
    let operation = match (status, patch) {
        (None, None) => {
            return Err(Problem::invalid_field(
                "status",
                "give status, metadata or both",
            ));
        }
        (Some(status), None) => Operation::new(&caller, set_status(status)),
        (status, Some(patch)) => {
            let op = Operation::new(
                &caller,
                Command::PatchWalletMetadata {
                    wallet: wallet.clone(),
                    patch,
                },
            );
            match status {
                Some(status) => op.before(set_status(status)),
                None => op,
            }
        }
    };
    let submitted = operation
        .idempotency(body.idempotency)
        .submit(&state, "changing a wallet")
        .await?
        .map_err(|r| refusals::refusal(&r))?;
    match submitted {
        (Done::Wallet(w), replayed) => Ok(json_response(
            StatusCode::OK,
            &WalletOut::from(&w),
            replayed,
        )),
        (other, _) => Err(unexpected(&other, "wallet")),
    }
}

// ---------------------------------------------------------------------------------
// Settings.

fn default_validity_key() -> SettingKey {
    SettingKey::parse(DEFAULT_VALIDITY_SETTING).expect("the default validity key is valid")
}

async fn settings_out(state: &SharedState, caller: &Principal) -> Result<SettingsOut, Problem> {
    let value = state
        .store
        .setting(&caller.tenant, &default_validity_key())
        .await
        .map_err(|e| store_problem(&e, "reading the settings"))?;
    Ok(SettingsOut {
        default_validity_seconds: value.as_deref().and_then(default_validity_seconds),
    })
}

#[utoipa::path(get, path = "/v1/settings", tag = "settings",
    responses((status = 200, body = SettingsOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// The tenant's settings.
async fn get_settings(State(state): State<SharedState>, caller: Caller<Read>) -> Answer {
    Ok(ok(&settings_out(&state, &caller).await?))
}

#[utoipa::path(patch, path = "/v1/settings", tag = "settings",
    request_body = PatchSettingsIn,
    responses((status = 200, body = SettingsOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Changes the tenant's settings: the default validity of top-ups that name no expiry
/// (in every dialect; TOPdesk and TouchTopUp top-ups never name one).
async fn patch_settings(
    State(state): State<SharedState>,
    caller: Caller<Admin>,
    body: JsonBody<PatchSettingsIn>,
) -> Answer {
    let Some(seconds) = body.value.default_validity_seconds else {
        return Ok(ok(&settings_out(&state, &caller).await?));
    };
    let value = match seconds {
        None => String::new(),
        Some(s) if (1..=DEFAULT_VALIDITY_SECONDS_MAX).contains(&s) => s.to_string(),
        Some(_) => {
            return Err(Problem::invalid_field(
                "default_validity_seconds",
                format_args!("must be 1 to {DEFAULT_VALIDITY_SECONDS_MAX}, or null"),
            ));
        }
    };
    let command = Command::PutSetting {
        key: default_validity_key(),
        value,
    };
    submit(&state, &caller, body.idempotency, command).await?;
    Ok(ok(&settings_out(&state, &caller).await?))
}

// ---------------------------------------------------------------------------------
// Mutations.

#[utoipa::path(post, path = "/v1/wallets/{id}/mutations", tag = "mutations",
    params(("id" = String, Path, description = "The wallet id")),
    request_body = PostMutationIn,
    responses((status = 201, body = MutationOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Tops up, debits or adjusts a wallet.
async fn post_mutation(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
    body: JsonBody<PostMutationIn>,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    let v = body.value;
    let (kind, amount) = post_amount("amount", v.kind, v.amount)?;
    let terms = grant_terms(
        "",
        kind == MutationKind::TopUp || (kind == MutationKind::Adjustment && amount.get() > 0),
        v.expires_at,
        v.priority,
        v.category.as_deref(),
    )?;
    let command = Command::Post {
        metadata: metadata("", v.metadata)?,
        id: MutationId(new_uuid()),
        wallet,
        kind,
        amount,
        reference: reference(v.reference),
        occurred_at: v.occurred_at.map(|t| t.0),
        terms,
    };
    match submit(&state, &caller, body.idempotency, command).await? {
        (Done::Mutation(m), replayed) => Ok(created(&MutationOut::from(&m), replayed)),
        (other, _) => Err(unexpected(&other, "mutation")),
    }
}

#[utoipa::path(get, path = "/v1/wallets/{id}/mutations", tag = "mutations",
    params(("id" = String, Path, description = "The wallet id"),
        ("metadata" = Option<MetadataOut>, Query, style = DeepObject, explode,
            description = "`metadata[<key>]=<value>`: only those carrying every pair given (at most 8)"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1 to 1000, default 100"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page")),
    responses((status = 200, body = MutationPage), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// A wallet's mutations, oldest first.
async fn list_mutations(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
    query: ListQuery,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    let after = query
        .after
        .as_deref()
        .map(|a| a.parse::<i64>().map_err(|_| bad_cursor()))
        .transpose()?;
    visible_wallet(&state, &caller, &wallet).await?;
    let page = state
        .store
        .mutations(
            &caller.tenant,
            &MutationQuery {
                metadata: query.metadata.clone(),
                wallet: Some(wallet),
                customer: None,
                after,
                limit: query.limit,
                ..MutationQuery::default()
            },
        )
        .await
        .map_err(|e| store_problem(&e, "listing mutations"))?;
    Ok(ok(&MutationPage {
        items: page.items.iter().map(MutationOut::from).collect(),
        next: next_cursor(page.next),
    }))
}

#[utoipa::path(get, path = "/v1/mutations/{id}", tag = "mutations",
    params(("id" = String, Path, description = "The mutation id (a UUID)")),
    responses((status = 200, body = MutationOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// One mutation.
async fn get_mutation(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
) -> Answer {
    let id = MutationId(path_uuid(&seg, "mutation_not_found")?);
    let m = state
        .store
        .mutation(&caller.tenant, id)
        .await
        .map_err(|e| store_problem(&e, "reading a mutation"))?
        .filter(|m| caller.sees(&m.customer))
        .ok_or_else(|| not_found("mutation_not_found"))?;
    Ok(ok(&MutationOut::from(&m)))
}

#[utoipa::path(post, path = "/v1/mutations/{id}/reverse", tag = "mutations",
    params(("id" = String, Path, description = "The id of the mutation to reverse (a UUID)")),
    request_body(content = ReverseIn, description = "May be empty"),
    responses((status = 201, body = MutationOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Posts the opposite of a mutation, once: a second call answers the same reversal. A
/// debit's reversal gives each grant back what it drew, with its own expiry; a credit's
/// takes back what its grant has left, and is refused with what could be taken back
/// when part was spent, unless an admin key sends `allow_negative`.
async fn reverse_mutation(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
    body: JsonBody<ReverseIn, true>,
) -> Answer {
    let original = MutationId(path_uuid(&seg, "mutation_not_found")?);
    let v = body.value;
    let allow_negative = v.allow_negative.unwrap_or(false);
    if allow_negative && !caller.scopes.admin {
        return Err(Problem::forbidden(
            "allow_negative needs a key with the admin scope",
        ));
    }
    let command = Command::Reverse {
        id: prepaid_ledger::reversal_id(original),
        mutation: original,
        allow_negative,
        reference: v
            .reference
            .map(|r| r.0)
            .unwrap_or_else(|| Reference::known("reversal", "", "")),
    };
    match submit(&state, &caller, body.idempotency, command).await? {
        (Done::Mutation(m), replayed) => Ok(created(&MutationOut::from(&m), replayed)),
        (other, _) => Err(unexpected(&other, "mutation")),
    }
}

/// The key of item `index` of a batch sent with a request-level `Idempotency-Key`, so
/// that a repeated batch repeats each item.
fn derived_item_key(batch_key: &IdempotencyKey, index: usize) -> IdempotencyKey {
    let digest = Sha256::digest(batch_key.as_str().as_bytes());
    let text = format!(
        "batch:{}:{index}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    );
    IdempotencyKey::parse(&text).expect("a derived key is short visible ASCII")
}

fn derived_item_fingerprint(batch: &Fingerprint, index: usize) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(b"batch-item\0");
    h.update(batch.0);
    h.update((index as u64).to_be_bytes());
    Fingerprint(h.finalize().into())
}

/// The fingerprint of an item with its own key: that of the single
/// `POST /v1/wallets/{wallet_id}/mutations` with the same fields, so a client may retry
/// one either way.
fn item_fingerprint(wallet: &WalletId, item: &Value) -> Fingerprint {
    let mut fields = serde_json::Map::new();
    if let Value::Object(map) = item {
        for (k, v) in map {
            if k != "wallet_id" && k != "idempotency_key" {
                fields.insert(k.clone(), v.clone());
            }
        }
    }
    fingerprint(
        &Method::POST,
        &format!("/v1/wallets/{}/mutations", wallet.as_str()),
        &Value::Object(fields),
    )
}

fn batch_item(
    index: usize,
    item: &Value,
    batch_idempotency: Option<&(IdempotencyKey, Fingerprint)>,
) -> Result<(Command, Option<(IdempotencyKey, Fingerprint)>), Problem> {
    let prefix = format!("mutations[{index}]");
    let v: BatchItemIn = from_value(&prefix, item)?;
    let (kind, amount) = post_amount(&format!("{prefix}.amount"), v.kind, v.amount)?;
    let terms = grant_terms(
        &format!("{prefix}."),
        kind == MutationKind::TopUp || (kind == MutationKind::Adjustment && amount.get() > 0),
        v.expires_at,
        v.priority,
        v.category.as_deref(),
    )?;
    let idempotency = match (v.idempotency_key, batch_idempotency) {
        (Some(key), _) => {
            let fp = item_fingerprint(&v.wallet_id.0, item);
            Some((key.0, fp))
        }
        (None, Some((key, fp))) => Some((
            derived_item_key(key, index),
            derived_item_fingerprint(fp, index),
        )),
        (None, None) => None,
    };
    let command = Command::Post {
        metadata: metadata(&format!("{prefix}."), v.metadata)?,
        id: MutationId(new_uuid()),
        wallet: v.wallet_id.0,
        kind,
        amount,
        reference: reference(v.reference),
        occurred_at: v.occurred_at.map(|t| t.0),
        terms,
    };
    Ok((command, idempotency))
}

#[utoipa::path(post, path = "/v1/batch", tag = "mutations",
    request_body = BatchIn,
    responses((status = 200, body = BatchOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Up to 8,000 top-ups, debits and adjustments in one durable transaction; each item
/// succeeds or fails on its own.
async fn batch(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    body: JsonBody<BatchIn>,
) -> Answer {
    let items = body.value.mutations;
    if items.len() > BATCH_ITEMS_MAX {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "batch_too_large",
            "Batch too large",
            format!(
                "a batch holds at most {BATCH_ITEMS_MAX} mutations, this one {}",
                items.len()
            ),
        ));
    }
    // Each slot is the item's problem, or the index of its request in `requests`.
    let mut slots: Vec<Result<usize, Problem>> = Vec::with_capacity(items.len());
    let mut requests = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match batch_item(index, item, body.idempotency.as_ref()) {
            Ok((command, idempotency)) => {
                slots.push(Ok(requests.len()));
                requests.push(Request {
                    tenant: caller.tenant.clone(),
                    customer_only: caller.customer.clone(),
                    idempotency,
                    command,
                    before: Vec::new(),
                    after: Vec::new(),
                });
            }
            Err(problem) => slots.push(Err(problem)),
        }
    }
    drop(items);
    let outcomes = state
        .engine
        .submit_many(requests)
        .await
        .map_err(|e| engine_problem(&e, "submitting a batch"))?;
    let results: Vec<Result<(prepaid_ledger::Mutation, bool), Problem>> = slots
        .into_iter()
        .map(|slot| {
            let at = slot?;
            match &outcomes[at] {
                Outcome::Done {
                    done: Done::Mutation(m),
                    replayed,
                } => Ok((m.clone(), *replayed)),
                Outcome::Done { done, .. } => Err(unexpected(done, "mutation")),
                Outcome::Refused(r) => Err(refusals::refusal(r)),
            }
        })
        .collect();
    let all_replayed = !results.is_empty() && results.iter().all(|r| matches!(r, Ok((_, true))));
    let out = BatchOut {
        results: results
            .iter()
            .map(|r| match r {
                Ok((m, _)) => BatchResultOut {
                    status: StatusCode::CREATED.as_u16(),
                    mutation: Some(MutationOut::from(m)),
                    error: None,
                },
                Err(p) => BatchResultOut {
                    status: p.status.as_u16(),
                    mutation: None,
                    error: Some(p),
                },
            })
            .collect(),
    };
    Ok(json_response(StatusCode::OK, &out, all_replayed))
}

// ---------------------------------------------------------------------------------
// Transfers.

#[utoipa::path(post, path = "/v1/transfers", tag = "transfers",
    request_body = TransferIn,
    responses((status = 201, body = TransferOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Moves value from one wallet to another of the same unit.
async fn transfer(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    body: JsonBody<TransferIn>,
) -> Answer {
    let v = body.value;
    let command = Command::Transfer {
        metadata: metadata("", v.metadata)?,
        id: TransferId(new_uuid()),
        debit_id: MutationId(new_uuid()),
        credit_id: MutationId(new_uuid()),
        from: v.from_wallet_id.0,
        to: v.to_wallet_id.0,
        amount: positive("amount", v.amount)?,
        reference: reference(v.reference),
        occurred_at: v.occurred_at.map(|t| t.0),
        terms: grant_terms("", true, v.expires_at, v.priority, v.category.as_deref())?,
    };
    match submit(&state, &caller, body.idempotency, command).await? {
        (Done::Transfer(t), replayed) => Ok(created(&TransferOut::from(&t), replayed)),
        (other, _) => Err(unexpected(&other, "transfer")),
    }
}

// ---------------------------------------------------------------------------------
// Holds.

#[utoipa::path(post, path = "/v1/wallets/{id}/holds", tag = "holds",
    params(("id" = String, Path, description = "The wallet id")),
    request_body = PlaceHoldIn,
    responses((status = 201, body = HoldOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Sets an amount aside on a wallet.
async fn place_hold(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
    body: JsonBody<PlaceHoldIn>,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    let v = body.value;
    let command = Command::PlaceHold {
        metadata: metadata("", v.metadata)?,
        id: HoldId(new_uuid()),
        wallet,
        amount: positive("amount", v.amount)?,
        reference: reference(v.reference),
        expires_at: v.expires_at.map(|t| t.0),
    };
    match submit(&state, &caller, body.idempotency, command).await? {
        (Done::Hold { hold, .. }, replayed) => Ok(created(&HoldOut::from(&hold), replayed)),
        (other, _) => Err(unexpected(&other, "hold")),
    }
}

#[utoipa::path(get, path = "/v1/holds/{id}", tag = "holds",
    params(("id" = String, Path, description = "The hold id (a UUID)")),
    responses((status = 200, body = HoldOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// One hold.
async fn get_hold(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
) -> Answer {
    let id = HoldId(path_uuid(&seg, "hold_not_found")?);
    let hold = state
        .store
        .hold(&caller.tenant, id)
        .await
        .map_err(|e| store_problem(&e, "reading a hold"))?
        .filter(|h| caller.sees(&h.customer))
        .ok_or_else(|| not_found("hold_not_found"))?;
    Ok(ok(&HoldOut::from(&hold)))
}

fn settled(done: Done, replayed: bool) -> Answer {
    match done {
        Done::Hold { hold, mutation } => Ok(json_response(
            StatusCode::OK,
            &HoldSettledOut {
                hold: HoldOut::from(&hold),
                mutation: mutation.as_ref().map(MutationOut::from),
            },
            replayed,
        )),
        other => Err(unexpected(&other, "hold")),
    }
}

#[utoipa::path(post, path = "/v1/holds/{id}/commit", tag = "holds",
    params(("id" = String, Path, description = "The hold id (a UUID)")),
    request_body(content = CommitHoldIn, description = "May be empty: commits the whole hold"),
    responses((status = 200, body = HoldSettledOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Commits a hold (all of it, or `amount`; the rest is released).
async fn commit_hold(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
    body: JsonBody<CommitHoldIn, true>,
) -> Answer {
    let hold = HoldId(path_uuid(&seg, "hold_not_found")?);
    let amount = body
        .value
        .amount
        .map(|a| positive("amount", a))
        .transpose()?;
    let command = Command::CommitHold {
        hold,
        amount,
        mutation_id: MutationId(new_uuid()),
        reference: None,
    };
    let (done, replayed) = submit(&state, &caller, body.idempotency, command).await?;
    settled(done, replayed)
}

#[utoipa::path(post, path = "/v1/holds/{id}/release", tag = "holds",
    params(("id" = String, Path, description = "The hold id (a UUID)")),
    request_body(content = ReleaseHoldIn, description = "`{}` or empty"),
    responses((status = 200, body = HoldSettledOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Releases a hold: its amount is available again.
async fn release_hold(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
    body: JsonBody<ReleaseHoldIn, true>,
) -> Answer {
    let hold = HoldId(path_uuid(&seg, "hold_not_found")?);
    let command = Command::ReleaseHold {
        hold,
        mutation_id: MutationId(new_uuid()),
    };
    let (done, replayed) = submit(&state, &caller, body.idempotency, command).await?;
    settled(done, replayed)
}

// ---------------------------------------------------------------------------------
// The OpenAPI document.

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "prepaid native API", description = "Prepaid balances and wallets: \
        customers, wallets, top-ups, debits, holds and transfers on a durable \
        double-entry ledger. Errors are RFC 9457 problems (application/problem+json) \
        with a stable `code`."),
    paths(create_tenant, create_api_key, create_customer, get_customer, patch_customer,
        list_customers,
        create_wallet, list_customer_wallets, list_wallets, get_wallet, patch_wallet,
        post_mutation, list_mutations, get_mutation, batch, transfer, place_hold, get_hold,
        commit_hold, release_hold, list_grants, reverse_mutation, get_settings, patch_settings,
        export::wallet_mutations_csv, export::mutations_csv,
        auto_topup::put_auto_topup, auto_topup::get_auto_topup, auto_topup::delete_auto_topup,
        alerts::put_alert, alerts::get_alert, alerts::delete_alert),
    components(schemas(ProblemOut, ReferenceObject, ReferenceInput, BatchItemIn, BatchResultOut,
        auto_topup::AutoTopUpIn, auto_topup::AutoTopUpOut,
        alerts::LowBalanceAlertIn, alerts::LowBalanceAlertOut)),
    modifiers(&Security),
    tags((name = "customers"), (name = "wallets"), (name = "mutations"),
        (name = "transfers"), (name = "holds"), (name = "api-keys"), (name = "tenants"),
        (name = "settings"))
)]
pub struct NativeApi;

/// The OpenAPI document of the native API's own routes; the server merges in the
/// administration routes dialects bring under `/v1`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = NativeApi::openapi();
    doc.merge(webhooks::WebhooksApi::openapi());
    doc
}

/// The rendered document `/v1/openapi.json` serves.
#[derive(Clone)]
struct OpenApiJson(Arc<[u8]>);

async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    let mut response = axum::body::Bytes::from_owner(doc.0).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_item_errors_name_the_item() {
        let item = serde_json::json!({"wallet_id": "w", "kind": "debit", "amount": 0});
        let p = batch_item(7, &item, None).unwrap_err();
        assert!(p.detail.starts_with("mutations[7].amount:"), "{}", p.detail);
        let item = serde_json::json!({"wallet_id": "w", "kind": "debit", "amount": 1, "x": 1});
        let p = batch_item(2, &item, None).unwrap_err();
        assert_eq!(p.code, "unknown_field");
        assert!(p.detail.starts_with("mutations[2]"), "{}", p.detail);
    }

    #[test]
    fn batch_item_with_own_key_fingerprints_like_a_single_post() {
        let item = serde_json::json!({"wallet_id": "w", "kind": "top_up", "amount": 5,
            "idempotency_key": "k1"});
        let (_, idem) = batch_item(0, &item, None).unwrap();
        let (key, fp) = idem.unwrap();
        assert_eq!(key.as_str(), "k1");
        let single = serde_json::json!({"amount": 5, "kind": "top_up"});
        assert_eq!(
            fp,
            fingerprint(&Method::POST, "/v1/wallets/w/mutations", &single)
        );
    }

    #[test]
    fn batch_keys_are_derived_per_item() {
        let key =
            IdempotencyKey::parse(&"k".repeat(prepaid_ledger::IDEMPOTENCY_KEY_LEN_MAX)).unwrap();
        let a = derived_item_key(&key, 0);
        let b = derived_item_key(&key, BATCH_ITEMS_MAX - 1);
        assert_ne!(a, b);
        let fp = Fingerprint([1; 32]);
        assert_ne!(
            derived_item_fingerprint(&fp, 0),
            derived_item_fingerprint(&fp, 1)
        );
    }

    #[test]
    fn default_scales() {
        assert_eq!(default_scale("EUR"), 2);
        assert_eq!(default_scale("JPY"), 0);
        assert_eq!(default_scale("KWD"), 3);
        assert_eq!(default_scale("MIN"), 0);
    }

    #[test]
    fn openapi_lists_every_route() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/v1/tenants",
            "/v1/api-keys",
            "/v1/customers",
            "/v1/customers/{id}",
            "/v1/customers/{id}/wallets",
            "/v1/wallets",
            "/v1/wallets/{id}",
            "/v1/wallets/{id}/mutations",
            "/v1/wallets/{id}/holds",
            "/v1/mutations/{id}",
            "/v1/batch",
            "/v1/transfers",
            "/v1/holds/{id}",
            "/v1/holds/{id}/commit",
            "/v1/holds/{id}/release",
        ] {
            assert!(
                paths.contains_key(p),
                "{p} is missing from the OpenAPI document"
            );
        }
    }
}
