//! The form posts: each is one [`Operation`] sent to the engine with the form's
//! idempotency key, as the native API sends the same change, then a redirect to the
//! page that shows it (or, for a new key or tenant, the page with its secret once).

use crate::forms::{Posted, SignInPost};
use crate::pages::{self, visible_customer, visible_wallet};
use crate::session::{Session, clear_cookie, set_cookie};
use crate::view::parse_decimal;
use crate::{ConsoleError, Keys};
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use prepaid_edge::auth::{Scope, authenticate_secret, generate_secret, secret_digest};
use prepaid_edge::origin::Origin;
use prepaid_edge::refusals::refusal;
use prepaid_edge::submit::Operation;
use prepaid_edge::{ADMIN_KEY_NAME, PathSegment, SharedState, new_uuid};
use prepaid_ledger::{
    Amount, ApiKeyName, Command, CustomerId, Done, Floor, GrantTerms, HoldId, MutationId,
    MutationKind, NAME_LEN_MAX, NewApiKey, NewWallet, Reference, Scopes, TenantId, Unit, Wallet,
    WalletId, WalletStatus, bounded_text, default_scale,
};
use std::sync::Arc;
use subtle::ConstantTimeEq;

type Answer = Result<Response, ConsoleError>;

/// Refuses a post of a key without `scope`.
fn require(session: &Session, scope: Scope) -> Result<(), ConsoleError> {
    if session.may(scope) {
        Ok(())
    } else {
        Err(ConsoleError::forbidden("this key may not make this change"))
    }
}

/// Sends `command` as the session's key with the form's idempotency key: one unit.
/// Answers what it did and whether that repeats the answer to an earlier post.
async fn submit(
    state: &SharedState,
    posted: &Posted,
    command: Command,
) -> Result<(Done, bool), ConsoleError> {
    let submitted = Operation::new(&posted.session.principal, command)
        .idempotency(posted.idempotency.clone())
        .submit(state, "submitting a console form")
        .await?;
    submitted.map_err(|r| ConsoleError::Failure(refusal(&r).0))
}

/// Sends `command`, then sends the browser to `then`.
async fn change(state: &SharedState, posted: &Posted, command: Command, then: String) -> Answer {
    submit(state, posted, command).await?;
    Ok(see_other(&then))
}

/// The page of `wallet`, at `fragment`.
fn to_wallet(wallet: &WalletId, fragment: &str) -> String {
    format!("/console/wallets/{wallet}{fragment}")
}

/// The wallet a post of a write form names, if the session may change it.
async fn wallet_to_change(
    state: &SharedState,
    seg: &PathSegment,
    posted: &Posted,
) -> Result<Wallet, ConsoleError> {
    require(&posted.session, Scope::Write)?;
    visible_wallet(state, &posted.session, &seg.0).await
}

/// The form's `name`: free text of at most `NAME_LEN_MAX` bytes.
fn name_field(posted: &Posted) -> Result<String, ConsoleError> {
    bounded_text(posted.fields.get("name").trim(), NAME_LEN_MAX)
        .map_err(|e| ConsoleError::invalid("name", e))
}

/// The answer to a form that makes a secret when the engine answered otherwise: a
/// form posted again is answered from the first post, whose secret is gone (only its
/// digest was kept).
fn not_again(replayed: bool) -> ConsoleError {
    if replayed {
        ConsoleError::invalid(
            "form",
            "this form was posted already; the secret was shown then",
        )
    } else {
        ConsoleError::internal()
    }
}

fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// Signs in with a key's name and secret.
pub async fn sign_in(
    State(state): State<SharedState>,
    Extension(keys): Extension<Arc<Keys>>,
    post: SignInPost,
) -> Answer {
    let (name, secret) = (post.fields.get("name"), post.fields.get("secret"));
    let refused = || {
        pages::sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some("Unknown key name or secret."),
        )
    };
    if name.is_empty()
        || secret.is_empty()
        || secret.len() > prepaid_edge::auth::AUTHORIZATION_LEN_MAX
    {
        return Ok(refused());
    }
    let principal = match authenticate_secret(&state, secret).await {
        Ok(p) => p,
        Err(f) if f.status == StatusCode::UNAUTHORIZED => return Ok(refused()),
        Err(f) => return Err(f.into()),
    };
    if !bool::from(
        name.as_bytes()
            .ct_eq(principal.key_name.as_str().as_bytes()),
    ) {
        return Ok(refused());
    }
    let server_key = keys.server_key(&state).await?;
    let now_secs = state.clock.now().as_micros() / 1_000_000;
    let value = server_key.issue(&secret_digest(secret), now_secs);
    let secure = post.origin.scheme == "https";
    let mut response = see_other("/console");
    let cookie =
        HeaderValue::from_str(&set_cookie(&value, secure)).map_err(|_| ConsoleError::internal())?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Signs out: the browser forgets the session.
pub async fn sign_out(origin: Origin, posted: Posted) -> Response {
    drop(posted);
    let mut response = see_other("/console/sign-in");
    if let Ok(cookie) = HeaderValue::from_str(&clear_cookie(origin.scheme == "https")) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

pub async fn create_customer(State(state): State<SharedState>, posted: Posted) -> Answer {
    if !posted.session.tenant_wide() {
        return Err(ConsoleError::NotFound);
    }
    require(&posted.session, Scope::Write)?;
    let f = &posted.fields;
    let id = match f.get("id").trim() {
        "" => CustomerId::from_uuid(new_uuid()),
        id => CustomerId::parse(id).map_err(|e| ConsoleError::invalid("id", e))?,
    };
    let name = name_field(&posted)?;
    let command = Command::CreateCustomer {
        id,
        name,
        link: String::new(),
    };
    match submit(&state, &posted, command).await?.0 {
        Done::Customer(c) => Ok(see_other(&format!("/console/customers/{}", c.id))),
        _ => Err(ConsoleError::internal()),
    }
}

pub async fn create_wallet(
    State(state): State<SharedState>,
    seg: PathSegment,
    posted: Posted,
) -> Answer {
    require(&posted.session, Scope::Write)?;
    let customer = visible_customer(&state, &posted.session, &seg.0).await?;
    let f = &posted.fields;
    let code = f.get("unit").trim().to_ascii_uppercase();
    let scale = match f.get("scale").trim() {
        "" => default_scale(&code),
        s => s
            .parse()
            .map_err(|_| ConsoleError::invalid("scale", "must be a number of places, 0 to 18"))?,
    };
    let unit = Unit::new(&code, scale).map_err(|e| ConsoleError::invalid("unit", e))?;
    let id = match f.get("id").trim() {
        "" => WalletId::from_uuid(new_uuid()),
        id => WalletId::parse(id).map_err(|e| ConsoleError::invalid("id", e))?,
    };
    let name = name_field(&posted)?;
    let wallet = NewWallet {
        metadata: Default::default(),
        id,
        customer: customer.id,
        unit,
        name,
        product: String::new(),
        floor: Floor::ZERO,
        ceiling: None,
        valid_from: None,
        valid_until: None,
    };
    match submit(&state, &posted, Command::CreateWallet { wallet })
        .await?
        .0
    {
        Done::Wallet(w) => Ok(see_other(&format!("/console/wallets/{}", w.id))),
        _ => Err(ConsoleError::internal()),
    }
}

fn reference(posted: &Posted) -> Result<Reference, ConsoleError> {
    Reference::new("console", posted.fields.get("reference").trim(), "")
        .map_err(|e| ConsoleError::invalid("reference", e.error))
}

/// The amount of a form in the wallet's unit, in minor units.
fn amount_field(posted: &Posted, unit: &Unit) -> Result<i64, ConsoleError> {
    parse_decimal(posted.fields.get("amount"), unit.scale())
        .map_err(|why| ConsoleError::invalid("amount", why))
}

pub async fn post_mutation(
    State(state): State<SharedState>,
    seg: PathSegment,
    posted: Posted,
) -> Answer {
    let wallet = wallet_to_change(&state, &seg, &posted).await?;
    let minor = amount_field(&posted, &wallet.unit)?;
    let (kind, amount) = match posted.fields.get("kind") {
        "top_up" => (MutationKind::TopUp, Amount::positive(minor)),
        "debit" => (MutationKind::Debit, Amount::positive(minor)),
        "adjustment" => (MutationKind::Adjustment, Amount::nonzero(minor)),
        _ => {
            return Err(ConsoleError::invalid(
                "kind",
                "must be top_up, debit or adjustment",
            ));
        }
    };
    let amount = amount.map_err(|e| ConsoleError::invalid("amount", e))?;
    let command = Command::Post {
        metadata: Default::default(),
        id: MutationId(new_uuid()),
        wallet: wallet.id.clone(),
        kind,
        amount,
        reference: reference(&posted)?,
        occurred_at: None,
        terms: GrantTerms::default(),
    };
    change(&state, &posted, command, to_wallet(&wallet.id, "")).await
}

pub async fn place_hold(
    State(state): State<SharedState>,
    seg: PathSegment,
    posted: Posted,
) -> Answer {
    let wallet = wallet_to_change(&state, &seg, &posted).await?;
    let amount = Amount::positive(amount_field(&posted, &wallet.unit)?)
        .map_err(|e| ConsoleError::invalid("amount", e))?;
    let command = Command::PlaceHold {
        metadata: Default::default(),
        id: HoldId(new_uuid()),
        wallet: wallet.id.clone(),
        amount,
        reference: reference(&posted)?,
        expires_at: None,
    };
    change(&state, &posted, command, to_wallet(&wallet.id, "#holds")).await
}

/// The hold of a commit or release form, if the session sees it.
async fn visible_hold(
    state: &SharedState,
    posted: &Posted,
    seg: &PathSegment,
) -> Result<prepaid_ledger::Hold, ConsoleError> {
    let id = uuid::Uuid::try_parse(&seg.0).map_err(|_| ConsoleError::NotFound)?;
    state
        .store
        .hold(&posted.session.principal.tenant, HoldId(id))
        .await
        .map_err(|e| ConsoleError::store(&e, "reading a hold"))?
        .filter(|h| posted.session.principal.sees(&h.customer))
        .ok_or(ConsoleError::NotFound)
}

pub async fn commit_hold(
    State(state): State<SharedState>,
    seg: PathSegment,
    posted: Posted,
) -> Answer {
    require(&posted.session, Scope::Write)?;
    let hold = visible_hold(&state, &posted, &seg).await?;
    let wallet = visible_wallet(&state, &posted.session, hold.wallet.as_str()).await?;
    let amount = match posted.fields.get("amount").trim() {
        "" => None,
        _ => Some(
            Amount::positive(amount_field(&posted, &wallet.unit)?)
                .map_err(|e| ConsoleError::invalid("amount", e))?,
        ),
    };
    let command = Command::CommitHold {
        hold: hold.id,
        amount,
        mutation_id: MutationId(new_uuid()),
        reference: None,
    };
    change(&state, &posted, command, to_wallet(&wallet.id, "#holds")).await
}

pub async fn release_hold(
    State(state): State<SharedState>,
    seg: PathSegment,
    posted: Posted,
) -> Answer {
    require(&posted.session, Scope::Write)?;
    let hold = visible_hold(&state, &posted, &seg).await?;
    let command = Command::ReleaseHold {
        hold: hold.id,
        mutation_id: MutationId(new_uuid()),
    };
    change(&state, &posted, command, to_wallet(&hold.wallet, "#holds")).await
}

pub async fn set_status(
    State(state): State<SharedState>,
    seg: PathSegment,
    posted: Posted,
) -> Answer {
    let wallet = wallet_to_change(&state, &seg, &posted).await?;
    let status = match posted.fields.get("status") {
        "active" => WalletStatus::Active,
        "suspended" => WalletStatus::Suspended,
        _ => {
            return Err(ConsoleError::invalid(
                "status",
                "must be active or suspended",
            ));
        }
    };
    let command = Command::SetWalletStatus {
        wallet: wallet.id.clone(),
        status,
    };
    change(&state, &posted, command, to_wallet(&wallet.id, "")).await
}

pub async fn create_api_key(State(state): State<SharedState>, posted: Posted) -> Answer {
    if !posted.session.tenant_wide() {
        return Err(ConsoleError::NotFound);
    }
    require(&posted.session, Scope::Admin)?;
    let f = &posted.fields;
    let name =
        ApiKeyName::parse(f.get("name").trim()).map_err(|e| ConsoleError::invalid("name", e))?;
    let scopes = Scopes {
        read: f.has("scopes", "read"),
        write: f.has("scopes", "write"),
        admin: f.has("scopes", "admin"),
    };
    if !(scopes.read || scopes.write || scopes.admin) {
        return Err(ConsoleError::invalid(
            "scopes",
            "tick at least one of read, write, admin",
        ));
    }
    let customer = match f.get("customer_id").trim() {
        "" => None,
        c => Some(CustomerId::parse(c).map_err(|e| ConsoleError::invalid("customer_id", e))?),
    };
    let secret = generate_secret();
    let command = Command::CreateApiKey {
        key: NewApiKey {
            name,
            secret_sha256: secret_digest(&secret),
            scopes,
            customer,
        },
    };
    match submit(&state, &posted, command).await? {
        (Done::ApiKey(key), false) => Ok(pages::api_keys_page(
            &state,
            &posted.session,
            Some((key.name.as_str(), &secret)),
            None,
        )),
        (_, replayed) => Err(not_again(replayed)),
    }
}

pub async fn create_tenant(State(state): State<SharedState>, posted: Posted) -> Answer {
    if !pages::manages_tenants(&state, &posted.session) {
        return Err(ConsoleError::NotFound);
    }
    let f = &posted.fields;
    let tenant = match f.get("id").trim() {
        "" => TenantId::from_uuid(new_uuid()),
        id => TenantId::parse(id).map_err(|e| ConsoleError::invalid("id", e))?,
    };
    let name = name_field(&posted)?;
    let secret = generate_secret();
    let command = Command::CreateTenant {
        tenant,
        name,
        admin_key: NewApiKey {
            name: ApiKeyName::parse(ADMIN_KEY_NAME).expect("the admin key name is valid"),
            secret_sha256: secret_digest(&secret),
            scopes: Scopes::ALL,
            customer: None,
        },
    };
    match submit(&state, &posted, command).await? {
        (Done::Tenant { tenant, .. }, false) => Ok(pages::tenants_page(
            &posted.session,
            Some((&format!("admin of {tenant}"), &secret)),
            maud::html! {},
        )),
        (_, replayed) => Err(not_again(replayed)),
    }
}

/// Revokes a key of the session's tenant: it is deleted, and this instance's key cache
/// forgets it at once (others within `AUTH_CACHE_TTL_MS`).
pub async fn revoke_api_key(
    State(state): State<SharedState>,
    seg: PathSegment,
    posted: Posted,
) -> Answer {
    let principal = &posted.session.principal;
    if !posted.session.tenant_wide() {
        return Err(ConsoleError::NotFound);
    }
    require(&posted.session, Scope::Admin)?;
    let name = ApiKeyName::parse(&seg.0).map_err(|_| ConsoleError::NotFound)?;
    if name == principal.key_name {
        return Err(ConsoleError::invalid(
            "name",
            "this session's own key; sign in with another admin key to revoke it",
        ));
    }
    let revoked = state
        .store
        .revoke_api_key(&principal.tenant, &name)
        .await
        .map_err(|e| ConsoleError::store(&e, "revoking an API key"))?
        .ok_or(ConsoleError::NotFound)?;
    state.auth.forget(&revoked.secret_sha256);
    tracing::info!(tenant = %principal.tenant, key = %name, by = %principal.key_name, "API key revoked");
    Ok(see_other("/console/api-keys"))
}
