//! The TOPdesk Prepaid Services API (v1.0.0), mounted at
//! `/services/prepaid-services-backend`, the document's base path.
//!
//! HAL+JSON in and out (`application/hal+json`; `application/json` is accepted on
//! input too). Errors are `text/plain` sentences naming the field at fault, as the
//! document gives every error the schema `string` (see [`errors`]). The hrefs of
//! answers are absolute URLs on the host the client addressed, as a proxy in front
//! reports it (`Forwarded`, `X-Forwarded-Proto`/`-Host`) or else its `Host`.
//!
//! # Authentication
//!
//! As TOPdesk clients send it: HTTP Basic with an operator's login name and
//! application password, which here are a prepaid API key's name and secret. Bearer
//! with the secret works too. Reads need the `read` scope, `POST /balance-mutations`
//! `write`, `POST /service-user` `admin` (403 otherwise). A key restricted to one
//! customer sees and records only that customer's mutations; other customers' are 404
//! to it, and recording one for another customer is 403.
//!
//! # How TOPdesk's model maps onto the ledger
//!
//! - A TOPdesk customer (branch, site) is a prepaid customer whose id is the UUID that
//!   ends its `_links.for.href`, in lower-case hyphenated form; the customer's `link` is
//!   that href as first given, and it is what `for` and `of` show afterwards. A
//!   customer made through the native API without a link takes the href of the first
//!   TOPdesk post that names it (`PATCH /v1/customers/{id}` sets one too); until then
//!   it shows `urn:uuid:<id>`.
//! - Its minutes live in one wallet, its *prepaid services wallet*: the wallet whose id
//!   is the customer's id, unit `MIN` at scale 0, with no floor (time registered on
//!   tickets may take it below zero). The first balance mutation for a customer
//!   creates the customer and this wallet in the same transaction as the mutation.
//!   Only this wallet's mutations appear in this API.
//! - A positive `amountOfMinutes` is a `top_up`; a negative one an `adjustment` (a
//!   correction, which no floor stops); zero is recorded too, as an `adjustment` of 0
//!   that changes nothing but shows in the history. `modificationDate` is the
//!   mutation's `occurred_at`; `on` is its reference: type `EXTERNAL_SYSTEM`, text
//!   `on.reference`, no link.
//! - Time registered on tickets comes through the native API
//!   (`POST /v1/wallets/<customer uuid>/mutations` with `kind` `debit` and a reference
//!   of type `INCIDENT`, `SIMPLE_CHANGE` or `CHANGE_ACTIVITY` with its link) and shows
//!   here with that type and `referenceLink`. Any other reference type shows as
//!   `EXTERNAL_SYSTEM`.
//! - A prepaid services account exists once the customer has had a top-up (a mutation
//!   that adds minutes); its `balance` is the wallet's balance, the sum of all its
//!   mutations, and `latestTopUp` the mutation with a positive amount whose
//!   `modificationDate` is the latest (of several, the last recorded).
//! - The service user is a per-tenant setting (`topdesk.service-user`) that records
//!   which key set it up and when.
//!
//! # Ids and repeats
//!
//! A `_links.self.href` on a posted mutation names the id the client chose (the UUID
//! it ends in), which becomes the mutation's id. The post then carries an idempotency
//! key derived from that id, fingerprinted over what the mutation says (customer,
//! minutes, the instant of `modificationDate`, reference), so posting the same id with
//! the same content again answers 201 again and records nothing, while the same id
//! with other content is refused with 400 (the document knows no other status for a
//! refused post). Without `_links.self`, the server chooses a UUID v7. Mutation ids are
//! unique across the whole server, so an id already taken (by the native API, say) is
//! refused with 400 as well.
//!
//! # Lists
//!
//! `GET /balance-mutations` lists oldest first by the ledger's commit order, so new
//! mutations only ever append: walking `next` from page 1 sees every mutation that
//! existed when the walk began exactly once, however many are added meanwhile. `page`
//! counts from 1, `pageSize` is 1 to [`query::PAGE_SIZE_MAX`] (default 100), a page
//! past the last is empty. `compact=true` (the default) shows each item's `_links`,
//! `amountOfMinutes` and `modificationDate`; `compact=false` adds `on`. `query` is
//! TOPdesk's FIQL over the DTO's field paths (see [`query`]).

pub mod errors;
pub mod query;
pub mod types;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use errors::Error;
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Admin, Principal, Read, Write};
use prepaid_edge::body::{parse_json, read_body};
use prepaid_edge::submit::Operation;
use prepaid_edge::{engine_problem, new_uuid, store_problem};
use prepaid_ledger::{
    Amount, Command, CustomerId, Done, Floor, Mutation, MutationId, MutationKind, NewWallet,
    Outcome, Reference, SettingKey, TenantId, Unit, Wallet, WalletId,
};
use prepaid_query::Filter;
use prepaid_store::{MutationSearch, MutationSort, Order};
use query::ListParams;
use serde::Serialize;
use std::collections::HashMap;
use types::{
    AccountLinksOut, AccountOut, BalanceMutationIn, BalanceMutationOut, CollectionLinksOut,
    CollectionOut, EmbeddedOut, HalLink, NewMutation, ResourceType,
};
use uuid::Uuid;

/// Where the dialect is mounted: the document's base path.
pub const MOUNT: &str = "/services/prepaid-services-backend";
/// The media type of every answer with a body (errors aside).
pub const HAL_CONTENT_TYPE: &str = "application/hal+json";
/// The largest body of `POST /balance-mutations`, in bytes (a DTO is well under 4 KiB).
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// The unit code of a prepaid services wallet.
pub const MINUTES_UNIT: &str = "MIN";
/// The name given to a prepaid services wallet made on first use.
pub const WALLET_NAME: &str = "Prepaid Services";
/// The product of a prepaid services wallet made on first use.
pub const WALLET_PRODUCT: &str = "TOPdesk Prepaid Services";
/// The per-tenant setting that records the service user.
pub const SERVICE_USER_SETTING: &str = "topdesk.service-user";

prepaid_edge::routes! {
    rows, pub route_table;
    "/balance-mutations" => post(create_mutation): Write, get(list_mutations): Read;
    "/balance-mutations/{id}" => get(get_mutation): Read;
    "/prepaid-services-accounts/{id}" => get(get_account): Read;
    "/service-user" => head(service_user_exists): Read, post(set_up_service_user): Admin;
}

/// The routes of the TOPdesk dialect, to be nested under [`MOUNT`]: the rows of
/// [`route_table`].
pub fn router() -> Router<SharedState> {
    prepaid_edge::routes::build(rows())
        // The base path itself is no resource either, answered in the dialect's shape.
        .route("/", axum::routing::any(not_found))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

type Answer = Result<Response, Error>;

// ---------------------------------------------------------------------------------
// Extractors.

/// An authenticated caller whose key grants `R`'s scope; 401 and 403 are plain text.
pub type Caller<R> = prepaid_edge::auth::Caller<R, Error>;

/// The absolute URL of the dialect's root as the client addressed the server, for the
/// hrefs of answers: its origin (see [`prepaid_edge::origin`]: `Forwarded`, then
/// `X-Forwarded-Proto`/`-Host`, then the request's authority or `Host`; `localhost`
/// when none names a usable host), then [`MOUNT`].
pub struct Base(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(base_url(&parts.headers, &parts.uri)))
    }
}

fn base_url(headers: &HeaderMap, uri: &Uri) -> String {
    let origin = prepaid_edge::origin::Origin::of(uri, headers);
    format!("{}{MOUNT}", origin.base_or("localhost"))
}

/// The `{id}` of a route, as given; a malformed one is refused in plain text.
type Segment = prepaid_edge::PathSegment<Error>;

/// The UUID of a path id; TOPdesk answers 400 for an id that is not one.
fn path_uuid(seg: &Segment) -> Result<Uuid, Error> {
    Uuid::try_parse(&seg.0)
        .map_err(|_| Error::field("id", format!("must be a UUID, got {:?}", seg.0)))
}

// ---------------------------------------------------------------------------------
// Helpers.

fn hal<T: Serialize>(status: StatusCode, value: &T) -> Answer {
    let body = serde_json::to_vec(value).map_err(|e| {
        tracing::error!(error = %e, "serialising a TOPdesk answer failed");
        Error::internal()
    })?;
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(HAL_CONTENT_TYPE),
    );
    Ok(response)
}

/// A customer's id from a TOPdesk UUID.
fn customer_of(id: Uuid) -> CustomerId {
    CustomerId::from_uuid(id)
}

/// The id of a customer's prepaid services wallet.
fn wallet_of(customer: &CustomerId) -> WalletId {
    WalletId::parse(customer.as_str()).expect("a customer id is a valid wallet id")
}

fn minutes_unit() -> Unit {
    Unit::new(MINUTES_UNIT, 0).expect("MIN/0 is a valid unit")
}

fn is_prepaid_services_wallet(w: &Wallet) -> bool {
    w.id.as_str() == w.customer.as_str() && w.unit == minutes_unit()
}

fn is_prepaid_services_mutation(m: &Mutation) -> bool {
    m.wallet.as_str() == m.customer.as_str() && m.unit == minutes_unit()
}

fn mutation_href(base: &str, id: MutationId) -> String {
    format!("{base}/balance-mutations/{id}")
}

/// The URL of a customer's prepaid services account (its id is the customer's UUID).
fn account_href(base: &str, customer: &CustomerId) -> String {
    format!("{base}/prepaid-services-accounts/{customer}")
}

/// The URL of a customer as shown in `for` and `of`.
fn customer_href(customer: Option<&prepaid_ledger::Customer>, id: &CustomerId) -> String {
    match customer {
        Some(c) if !c.link.is_empty() => c.link.clone(),
        _ => format!("urn:uuid:{id}"),
    }
}

/// Customers' hrefs, looked up once per answer.
struct Hrefs<'a> {
    state: &'a SharedState,
    tenant: &'a TenantId,
    known: HashMap<CustomerId, String>,
}

impl<'a> Hrefs<'a> {
    fn new(state: &'a SharedState, tenant: &'a TenantId) -> Self {
        Self {
            state,
            tenant,
            known: HashMap::new(),
        }
    }

    async fn of(&mut self, id: &CustomerId) -> Result<String, Error> {
        if let Some(href) = self.known.get(id) {
            return Ok(href.clone());
        }
        let customer = self
            .state
            .store
            .customer(self.tenant, id)
            .await
            .map_err(|e| store_problem(&e, "reading a customer"))?;
        let href = customer_href(customer.as_ref(), id);
        self.known.insert(id.clone(), href.clone());
        Ok(href)
    }
}

/// The engine answered with another kind of result than the command asks for: a bug.
fn unexpected(wanted: &str) -> Error {
    tracing::error!(
        wanted,
        "the engine answered a TOPdesk command with another kind of result"
    );
    Error::internal()
}

fn request(caller: &Principal, command: Command) -> prepaid_ledger::Request {
    prepaid_ledger::Request {
        tenant: caller.tenant.clone(),
        customer_only: caller.customer.clone(),
        idempotency: None,
        command,
        before: Vec::new(),
        after: Vec::new(),
    }
}

/// Refuses a body that is neither `application/hal+json` nor `application/json`; a
/// body without a content type is read as JSON.
fn check_content_type(headers: &HeaderMap) -> Result<(), Error> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(HAL_CONTENT_TYPE)
        || essence.eq_ignore_ascii_case("application/json")
    {
        return Ok(());
    }
    Err(Error::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("the body must be {HAL_CONTENT_TYPE} (or application/json), not {text:?}"),
    ))
}

// ---------------------------------------------------------------------------------
// Balance mutations.

/// `POST /balance-mutations`.
async fn create_mutation(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    Base(base): Base,
    req: Request,
) -> Answer {
    check_content_type(req.headers())?;
    let bytes = read_body(req, BODY_BYTES_MAX).await?;
    let raw: BalanceMutationIn = parse_json(&bytes)?;
    let new = NewMutation::parse(raw)?;
    let customer = customer_of(new.customer.id);
    if !caller.sees(&customer) {
        return Err(Error::forbidden(
            "_links.for.href: this key may only record mutations for its own customer",
        ));
    }
    let wallet = wallet_of(&customer);
    let id = MutationId(new.id.unwrap_or_else(new_uuid));
    let (kind, amount) = if new.minutes > 0 {
        (MutationKind::TopUp, Amount::positive(new.minutes))
    } else {
        (MutationKind::Adjustment, Amount::new(new.minutes))
    };
    // `NewMutation` bounds the minutes far inside the ledger's amount bound.
    let amount = amount.map_err(|e| {
        tracing::error!(error = %e, "bounded minutes did not make an amount");
        Error::internal()
    })?;
    // `NewMutation` bounds the reference far inside the ledger's bound on its parts.
    let reference = Reference::new(ResourceType::ExternalSystem.as_str(), &new.reference, "")
        .map_err(|e| {
            tracing::error!(error = %e, "a checked reference did not make a reference");
            Error::internal()
        })?;
    let post = Command::Post {
        id,
        wallet: wallet.clone(),
        kind,
        amount,
        reference,
        occurred_at: Some(new.occurred_at),
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    };
    let idempotency = new
        .id
        .map(|client_id| (NewMutation::idempotency_key(client_id), new.fingerprint()));
    // A first use makes the customer (unless the native API made it) and its wallet in
    // the unit of the mutation, so a refused mutation leaves neither; a concurrent first
    // use that made them meanwhile is taken as it is. A customer without a link (made
    // natively) takes the href this client addresses it by.
    let posted = {
        let existing = state
            .store
            .wallet(&caller.tenant, &wallet)
            .await
            .map_err(|e| store_problem(&e, "reading a prepaid services wallet"))?;
        let mut op = Operation::new(&caller, post.clone())
            .idempotency(idempotency.clone())
            .before(Command::EnsureCustomer {
                id: customer.clone(),
                name: String::new(),
                link: new.customer.href.clone(),
            });
        match existing {
            Some(w) if !is_prepaid_services_wallet(&w) => {
                return Err(Error::field(
                    "_links.for.href",
                    format!(
                        "the customer's wallet {} counts {}, not minutes",
                        w.id, w.unit
                    ),
                ));
            }
            Some(_) => {}
            None => {
                op = op.before(Command::EnsureWallet {
                    wallet: NewWallet {
                        id: wallet.clone(),
                        customer: customer.clone(),
                        unit: minutes_unit(),
                        name: WALLET_NAME.into(),
                        product: WALLET_PRODUCT.into(),
                        floor: Floor::Unlimited,
                        ceiling: None,
                        valid_from: None,
                        valid_until: None,
                        metadata: prepaid_ledger::Metadata::default(),
                    },
                });
            }
        }
        op.submit(&state, "recording a TOPdesk balance mutation")
            .await?
    };
    match posted {
        Ok((Done::Mutation(m), replayed)) => {
            let location = HeaderValue::from_str(&mutation_href(&base, m.id)).map_err(|_| {
                tracing::error!("a mutation's URL is not a header value");
                Error::internal()
            })?;
            let mut response = StatusCode::CREATED.into_response();
            let headers = response.headers_mut();
            headers.insert(header::LOCATION, location);
            if replayed {
                headers.insert(
                    prepaid_edge::body::IDEMPOTENT_REPLAYED_HEADER,
                    HeaderValue::from_static("true"),
                );
            }
            Ok(response)
        }
        Ok(_) => Err(unexpected("mutation")),
        Err(r) => Err(errors::refusal(&r, Some(id))),
    }
}

/// `GET /balance-mutations`.
async fn list_mutations(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    Base(base): Base,
    uri: Uri,
) -> Answer {
    let params = ListParams::parse(uri.query())?;
    let mut tests = vec![query::prepaid_services_only()];
    if let Some(q) = &params.query {
        let filter = query::parse_filter(q).map_err(|message| {
            // The caret line is indented as far as the prefix moves the query.
            Error::bad_request(format!("query: {}", message.replace('\n', "\n       ")))
        })?;
        tests.push(filter);
    }
    let page_size = usize::try_from(params.page_size).unwrap_or(prepaid_store::PAGE_SIZE_MAX);
    let search = MutationSearch {
        customer: caller.customer.clone(),
        wallet: caller.customer.as_ref().map(wallet_of),
        filter: Some(Filter::And(tests)),
        order: Order::Ascending,
        sort: prepaid_store::MutationSort::Recorded,
        offset: params.offset(),
        limit: page_size,
    };
    let found = state
        .store
        .search_mutations(&caller.tenant, &search)
        .await
        .map_err(|e| store_problem(&e, "listing TOPdesk balance mutations"))?;
    let last = found.total.div_ceil(params.page_size).max(1);
    let mut hrefs = Hrefs::new(&state, &caller.tenant);
    let mut items = Vec::with_capacity(found.items.len());
    let mut item_links = Vec::with_capacity(found.items.len());
    for m in &found.items {
        let self_href = mutation_href(&base, m.id);
        item_links.push(HalLink::new(self_href.clone()));
        let for_href = hrefs.of(&m.customer).await?;
        items.push(BalanceMutationOut::new(
            m,
            self_href,
            for_href,
            account_href(&base, &m.customer),
            params.compact,
        ));
    }
    let page = params.page;
    let out = CollectionOut {
        links: CollectionLinksOut {
            self_: HalLink::new(params.href(&base, page)),
            first: HalLink::new(params.href(&base, 1)),
            last: HalLink::new(params.href(&base, last)),
            prev: (page > 1).then(|| HalLink::new(params.href(&base, (page - 1).min(last)))),
            next: (page < last).then(|| HalLink::new(params.href(&base, page + 1))),
            item: item_links,
        },
        embedded: EmbeddedOut { item: items },
        page,
        total: found.total,
        max_page_size: query::PAGE_SIZE_MAX,
    };
    hal(StatusCode::OK, &out)
}

/// `GET /balance-mutations/{id}`.
async fn get_mutation(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    Base(base): Base,
    seg: Segment,
) -> Answer {
    let id = MutationId(path_uuid(&seg)?);
    let m = state
        .store
        .mutation(&caller.tenant, id)
        .await
        .map_err(|e| store_problem(&e, "reading a TOPdesk balance mutation"))?
        .filter(|m| caller.sees(&m.customer) && is_prepaid_services_mutation(m))
        .ok_or_else(|| Error::not_found(format!("no balance mutation with id {id}")))?;
    let for_href = Hrefs::new(&state, &caller.tenant).of(&m.customer).await?;
    hal(
        StatusCode::OK,
        &BalanceMutationOut::new(
            &m,
            mutation_href(&base, m.id),
            for_href,
            account_href(&base, &m.customer),
            false,
        ),
    )
}

// ---------------------------------------------------------------------------------
// Prepaid services accounts.

/// `GET /prepaid-services-accounts/{id}`.
async fn get_account(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    Base(base): Base,
    seg: Segment,
) -> Answer {
    let id = path_uuid(&seg)?;
    let customer = customer_of(id);
    let absent = || {
        Error::not_found(format!(
            "customer {id} has no prepaid services account: it has had no top-up yet"
        ))
    };
    if !caller.sees(&customer) {
        return Err(absent());
    }
    let wallet = state
        .store
        .wallet(&caller.tenant, &wallet_of(&customer))
        .await
        .map_err(|e| store_problem(&e, "reading a prepaid services wallet"))?
        .filter(is_prepaid_services_wallet)
        .ok_or_else(absent)?;
    let latest = state
        .store
        .search_mutations(
            &caller.tenant,
            &MutationSearch {
                customer: Some(customer.clone()),
                wallet: Some(wallet.id.clone()),
                filter: Some(query::top_ups()),
                // The latest by `modificationDate`, ties the last recorded.
                order: Order::Descending,
                sort: MutationSort::Occurred,
                offset: 0,
                limit: 1,
            },
        )
        .await
        .map_err(|e| store_problem(&e, "finding the latest top-up"))?;
    let top_up = latest.items.first().ok_or_else(absent)?;
    let of = Hrefs::new(&state, &caller.tenant).of(&customer).await?;
    hal(
        StatusCode::OK,
        &AccountOut {
            links: AccountLinksOut {
                latest_top_up: HalLink::new(mutation_href(&base, top_up.id)),
                of: HalLink::new(of),
                self_: HalLink::new(account_href(&base, &customer)),
            },
            balance: wallet.balance,
        },
    )
}

// ---------------------------------------------------------------------------------
// The service user.

fn service_user_key() -> SettingKey {
    SettingKey::parse(SERVICE_USER_SETTING).expect("the service user setting key is valid")
}

/// `HEAD /service-user`: 204 when the tenant has a service user, else 404.
async fn service_user_exists(State(state): State<SharedState>, caller: Caller<Read>) -> Answer {
    let value = state
        .store
        .setting(&caller.tenant, &service_user_key())
        .await
        .map_err(|e| store_problem(&e, "reading the service user"))?;
    Ok(match value {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

/// The largest body of `POST /service-user`, which should be empty.
pub const SERVICE_USER_BODY_BYTES_MAX: usize = 1024;

/// `POST /service-user`: 201 when created, 200 when reset.
async fn set_up_service_user(
    State(state): State<SharedState>,
    caller: Caller<Admin>,
    req: Request,
) -> Answer {
    if caller.customer.is_some() {
        return Err(Error::forbidden(
            "a key restricted to one customer may not set up the service user",
        ));
    }
    let bytes = read_body(req, SERVICE_USER_BODY_BYTES_MAX).await?;
    let body = String::from_utf8_lossy(&bytes);
    let body = body.trim();
    // Clients that always send JSON send `{}` for "empty".
    if !(body.is_empty() || body == "{}") {
        return Err(Error::bad_request("the body of this request must be empty"));
    }
    let value = format!(
        "set up with API key {} at {}",
        caller.key_name,
        prepaid_edge::time::format(state.clock.now())
    );
    let command = Command::PutSetting {
        key: service_user_key(),
        value,
    };
    match state.engine.submit(request(&caller, command)).await {
        Ok(Outcome::Done {
            done: Done::Setting { created },
            ..
        }) => Ok(if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        }
        .into_response()),
        Ok(Outcome::Done { .. }) => Err(unexpected("setting")),
        Ok(Outcome::Refused(r)) => Err(errors::refusal(&r, None)),
        Err(e) => Err(engine_problem(&e, "setting up the service user").into()),
    }
}

// ---------------------------------------------------------------------------------
// Fallbacks.

/// The answer to a path the dialect does not serve, its base path included (which the
/// server routes here with its trailing slash too).
pub async fn not_found() -> Error {
    Error::not_found("no such resource in the TOPdesk Prepaid Services API")
}

async fn method_not_allowed(method: Method) -> Error {
    Error::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on this resource"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn base_urls_follow_the_request() {
        let uri: Uri = "/services/prepaid-services-backend/balance-mutations"
            .parse()
            .unwrap();
        assert_eq!(
            base_url(&headers(&[("host", "acme.example:8080")]), &uri),
            "http://acme.example:8080/services/prepaid-services-backend"
        );
        assert_eq!(
            base_url(
                &headers(&[
                    ("host", "acme.example"),
                    ("x-forwarded-proto", "https, http")
                ]),
                &uri
            ),
            "https://acme.example/services/prepaid-services-backend"
        );
        // A host that is not an authority is not echoed.
        assert_eq!(
            base_url(&headers(&[("host", "a b/c")]), &uri),
            "http://localhost/services/prepaid-services-backend"
        );
        assert_eq!(
            base_url(&headers(&[("host", "user@evil")]), &uri),
            "http://localhost/services/prepaid-services-backend"
        );
        let absolute: Uri = "http://h2.example/x".parse().unwrap();
        assert_eq!(
            base_url(&HeaderMap::new(), &absolute),
            "http://h2.example/services/prepaid-services-backend"
        );
    }

    #[test]
    fn content_types() {
        assert!(check_content_type(&HeaderMap::new()).is_ok());
        for ok in [
            "application/hal+json",
            "application/json; charset=utf-8",
            "Application/HAL+JSON",
        ] {
            assert!(
                check_content_type(&headers(&[("content-type", ok)])).is_ok(),
                "{ok}"
            );
        }
        let e = check_content_type(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded",
        )]))
        .unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn customer_hrefs_fall_back_to_a_urn() {
        let id = customer_of(Uuid::nil());
        assert_eq!(
            customer_href(None, &id),
            "urn:uuid:00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(wallet_of(&id).as_str(), id.as_str());
        assert!(service_user_key().as_str() == SERVICE_USER_SETTING);
    }
}
